/**
 * GET /pets throughput and latency against a bare Bun.serve + postgres.js ceiling, and the
 * time and peak memory of `export-pets`, on a freshly seeded PostgreSQL database.
 *
 *   bun bench/pets-list.bench.ts [--duration 10] [--rounds 2] [--pool 10] [--skip-1m]
 *
 * Each GET /pets figure is the best of `--rounds` runs, petbooks and the ceiling alternating.
 * `--skip-1m` leaves out the slowest part, the export over 1,000,000 pets.
 *
 * Needs PostgreSQL at 127.0.0.1:5432 (or BENCH_POSTGRES_URL), wrk and taskset. Creates and
 * finally drops the database petbooks_bench; touches no other database.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type postgres from "postgres";
import { type Cleanup, runBench } from "./lib/cleanup.ts";
import {
  benchDatabaseUrl,
  connect,
  dropBenchDatabase,
  recreateBenchDatabase,
  seedPets,
  seedSummary,
} from "./lib/database.ts";
import { timeExport } from "./lib/export.ts";
import { integerOption } from "./lib/options.ts";
import {
  childEnv,
  ensureBinary,
  freePorts,
  type RunningServer,
  runChecked,
  stageBinary,
  startPinnedServer,
} from "./lib/processes.ts";
import {
  type ExportResult,
  exportReport,
  listingReport,
  type VariantResult,
} from "./lib/report.ts";
import { type LoadResult, runWrk } from "./lib/wrk.ts";

const SERVER_CORE = 0;
const WRK_CORE = 1;
const CONNECTIONS = 64;
const WARMUP_SECONDS = 2;
const LISTING_PETS = 100_000;
const LARGE_EXPORT_PETS = 1_000_000;
const API_KEY = "petbooks-bench-api-key";
/** `serve` requires one (32 bytes or more) though GET /pets does not use tokens. */
const JWT_SECRET = "petbooks-bench-jwt-secret-0123456789abcdef";
const CEILING_SCRIPT = join(import.meta.dir, "ceiling-server.ts");

const VARIANTS = [
  { name: "no filter", query: "" },
  { name: "has_photos=true", query: "?has_photos=true" },
  { name: "has_photos=false", query: "?has_photos=false" },
  { name: "offset=50000", query: "?offset=50000" },
];
type Variant = (typeof VARIANTS)[number];

/** A private directory for DATA_DIR and the copy of the binary that is run. */
interface Workspace {
  dir: string;
  binary: string;
}

interface Options {
  seconds: number;
  rounds: number;
  poolSize: number;
  skip1m: boolean;
}

const USAGE =
  "usage: bun bench/pets-list.bench.ts [--duration SECONDS] [--rounds N] [--pool SIZE] [--skip-1m]";

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: "string", default: "10" },
      rounds: { type: "string", default: "2" },
      pool: { type: "string", default: "10" },
      "skip-1m": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return undefined;
  return {
    seconds: integerOption(values.duration, "duration"),
    rounds: integerOption(values.rounds, "rounds"),
    poolSize: integerOption(values.pool, "pool"),
    skip1m: values["skip-1m"],
  };
}

const progress = (message: string) => console.error(`· ${message}`);

/** A busy machine (another benchmark, a test run) skews every figure. */
const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "?";

async function machineLine(sql: postgres.Sql, loadAtStart: string): Promise<string> {
  const nproc = Bun.spawnSync(["nproc"]).stdout.toString().trim();
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1];
  const [pg] = await sql<{ server_version: string }[]>`show server_version`;
  return (
    `machine: nproc=${nproc} cpu="${cpu ?? "unknown"}" bun=${Bun.version} ` +
    `postgres=${pg?.server_version} loadavg-1m-at-start=${loadAtStart}`
  );
}

async function seed(sql: postgres.Sql, count: number): Promise<void> {
  progress(`seeding ${count} pets`);
  const started = performance.now();
  await seedPets(sql, count);
  const s = await seedSummary(sql);
  const share = ((100 * s.withPhotos) / s.pets).toFixed(1);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `seeded: ${s.pets} pets in total, ${s.withPhotos} (${share}%) with ${s.photos} photos ` +
      `(+${count} in ${seconds} s)`,
  );
}

/** Both servers must answer each variant with the same items, or the comparison is void. */
async function assertSameItems(petbooks: RunningServer, ceiling: RunningServer, variant: Variant) {
  const items = async (server: RunningServer) => {
    const res = await fetch(`${server.baseUrl}/pets${variant.query}`, {
      headers: { "x-api-key": API_KEY },
    });
    if (!res.ok) throw new Error(`${server.name} answered ${res.status} for ${variant.name}`);
    return ((await res.json()) as { items: unknown[] }).items;
  };
  const [expected, actual] = await Promise.all([items(petbooks), items(ceiling)]);
  if (expected.length === 0 || !Bun.deepEquals(expected, actual)) {
    throw new Error(`petbooks and the ceiling disagree on ${variant.name}`);
  }
}

async function load(server: RunningServer, variant: Variant, seconds: number) {
  const url = `${server.baseUrl}/pets${variant.query}`;
  const options = { connections: CONNECTIONS, core: WRK_CORE, headers: { "X-API-KEY": API_KEY } };
  try {
    await runWrk(url, { ...options, seconds: WARMUP_SECONDS });
    return await runWrk(url, { ...options, seconds });
  } catch (err) {
    const exited = server.exitReason();
    throw exited ? new Error(`${server.name} ${exited} under load on ${variant.name}`) : err;
  }
}

async function startServers(options: Options, ws: Workspace, cleanup: Cleanup) {
  const [petbooksPort, ceilingPort] = (await freePorts(2)) as [number, number];
  const env = {
    DATABASE_URL: benchDatabaseUrl,
    DATABASE_POOL_SIZE: String(options.poolSize),
    API_KEY,
    // One photo URL base for both, so their answers can be compared byte for byte.
    PUBLIC_URL: `http://127.0.0.1:${petbooksPort}`,
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
  };
  const ready = { path: "/pets?limit=1", headers: { "X-API-KEY": API_KEY } };
  const petbooks = await startPinnedServer({
    name: "petbooks",
    cmd: [ws.binary, "serve"],
    env: childEnv({ ...env, PORT: String(petbooksPort), DATA_DIR: ws.dir, JWT_SECRET }),
    port: petbooksPort,
    core: SERVER_CORE,
    ready,
  });
  cleanup.defer(petbooks.stop);
  const ceiling = await startPinnedServer({
    name: "ceiling",
    cmd: [process.execPath, CEILING_SCRIPT],
    env: childEnv({ ...env, PORT: String(ceilingPort) }),
    port: ceilingPort,
    core: SERVER_CORE,
    ready,
  });
  cleanup.defer(ceiling.stop);
  return { petbooks, ceiling };
}

/**
 * The fastest of the rounds: on a shared 2-core machine, interference only ever slows a run down.
 * A failed request in any round still voids the result.
 */
function bestOf(runs: LoadResult[]): LoadResult {
  const best = runs.reduce((a, b) => (b.rps > a.rps ? b : a));
  return { ...best, failures: runs.reduce((sum, r) => sum + r.failures, 0) };
}

async function benchListing(options: Options, ws: Workspace, cleanup: Cleanup) {
  const { petbooks, ceiling } = await startServers(options, ws, cleanup);
  for (const variant of VARIANTS) await assertSameItems(petbooks, ceiling, variant);
  const runs = VARIANTS.map((variant) => ({
    variant,
    petbooks: [] as LoadResult[],
    ceiling: [] as LoadResult[],
  }));
  for (let round = 1; round <= options.rounds; round++) {
    for (const run of runs) {
      progress(`round ${round}/${options.rounds}: ${run.variant.name}`);
      run.petbooks.push(await load(petbooks, run.variant, options.seconds));
      run.ceiling.push(await load(ceiling, run.variant, options.seconds));
    }
  }
  // Stopped now so that they do not compete with the exports.
  await Promise.all([petbooks.stop(), ceiling.stop()]);
  return runs.map(
    (run): VariantResult => ({
      name: run.variant.name,
      petbooks: bestOf(run.petbooks),
      ceiling: bestOf(run.ceiling),
    }),
  );
}

async function benchExport(label: string, ws: Workspace, sql: postgres.Sql) {
  progress(`export-pets over ${label} pets`);
  const run = await timeExport(ws.binary, benchDatabaseUrl, ws.dir);
  const { pets } = await seedSummary(sql);
  return { label, pets, run } satisfies ExportResult;
}

async function bench(options: Options, cleanup: Cleanup): Promise<void> {
  const loadAtStart = loadAverage();
  const dir = mkdtempSync(join(tmpdir(), "petbooks-bench-"));
  cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
  if (await ensureBinary()) progress("built ./petbooks (it was missing or older than its sources)");
  const ws: Workspace = { dir, binary: stageBinary(dir) };

  await recreateBenchDatabase();
  cleanup.defer(dropBenchDatabase);
  const dbEnv = childEnv({ DATABASE_URL: benchDatabaseUrl, DATA_DIR: dir, LOG_LEVEL: "warn" });
  await runChecked([ws.binary, "migrate"], dbEnv);
  const sql = connect(benchDatabaseUrl);
  cleanup.defer(() => sql.end({ timeout: 5 }));

  console.log(await machineLine(sql, loadAtStart));
  if (Number(loadAtStart) >= 1) {
    console.log("warning: the machine was already busy at start; the figures may be skewed");
  }
  await seed(sql, LISTING_PETS);

  const listing = await benchListing(options, ws, cleanup);
  console.log(
    `\nGET /pets (limit 20): wrk -t1 -c${CONNECTIONS} -d${options.seconds}s --latency after a ` +
      `${WARMUP_SECONDS} s warm-up, best of ${options.rounds} rounds; servers on core ` +
      `${SERVER_CORE}, wrk on core ${WRK_CORE}, PostgreSQL unpinned; pool ${options.poolSize}`,
  );
  console.log(listingReport(listing));

  const exports = [await benchExport("100k", ws, sql)];
  if (!options.skip1m) {
    // Same seeding approach, so the photo share stays about the same.
    await seed(sql, LARGE_EXPORT_PETS - LISTING_PETS);
    exports.push(await benchExport("1M", ws, sql));
  }
  console.log(exportReport(exports));
}

await runBench({
  usage: USAGE,
  parseOptions,
  run: bench,
  beforeCleanup: () => progress("cleaning up"),
});
