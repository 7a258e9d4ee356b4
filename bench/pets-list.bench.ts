/**
 * GET /pets throughput and latency against a bare Bun.serve + postgres.js ceiling, and the
 * time and peak memory of `export-pets`, on a freshly seeded PostgreSQL database.
 *
 *   bun bench/pets-list.bench.ts [--duration 10] [--pool 10] [--skip-1m]
 *
 * Needs PostgreSQL at 127.0.0.1:5432 (or BENCH_POSTGRES_URL), wrk and taskset. Creates and
 * finally drops the database petbooks_bench; touches no other database.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type postgres from "postgres";
import {
  benchDatabaseUrl,
  connect,
  dropBenchDatabase,
  recreateBenchDatabase,
  seedPets,
  seedSummary,
} from "./lib/database.ts";
import { timeExport } from "./lib/export.ts";
import {
  BINARY,
  childEnv,
  ensureBinary,
  freePorts,
  type RunningServer,
  runChecked,
  startPinnedServer,
} from "./lib/processes.ts";
import {
  type ExportResult,
  exportReport,
  listingReport,
  type VariantResult,
} from "./lib/report.ts";
import { runWrk } from "./lib/wrk.ts";

const SERVER_CORE = 0;
const WRK_CORE = 1;
const CONNECTIONS = 64;
const WARMUP_SECONDS = 2;
const LISTING_PETS = 100_000;
const LARGE_EXPORT_PETS = 1_000_000;
const API_KEY = "petbooks-bench-api-key";
const CEILING_SCRIPT = join(import.meta.dir, "ceiling-server.ts");

const VARIANTS = [
  { name: "no filter", query: "" },
  { name: "has_photos=true", query: "?has_photos=true" },
  { name: "has_photos=false", query: "?has_photos=false" },
  { name: "offset=50000", query: "?offset=50000" },
];
type Variant = (typeof VARIANTS)[number];

interface Options {
  seconds: number;
  poolSize: number;
  skip1m: boolean;
}

const USAGE = "usage: bun bench/pets-list.bench.ts [--duration SECONDS] [--pool SIZE] [--skip-1m]";

function positiveInteger(raw: string, name: string): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
  return n;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: "string", default: "10" },
      pool: { type: "string", default: "10" },
      "skip-1m": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return undefined;
  return {
    seconds: positiveInteger(values.duration, "duration"),
    poolSize: positiveInteger(values.pool, "pool"),
    skip1m: values["skip-1m"],
  };
}

/** Undo steps, run last-first whether the bench finished, failed or was interrupted. */
class Cleanup {
  private steps: (() => unknown)[] = [];

  defer(step: () => unknown) {
    this.steps.push(step);
  }

  async run() {
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step();
      } catch (err) {
        console.error("cleanup step failed:", err);
      }
    }
  }
}

const progress = (message: string) => console.error(`· ${message}`);

async function machineLine(sql: postgres.Sql): Promise<string> {
  const nproc = Bun.spawnSync(["nproc"]).stdout.toString().trim();
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1];
  const [pg] = await sql<{ server_version: string }[]>`show server_version`;
  return `machine: nproc=${nproc} cpu="${cpu ?? "unknown"}" bun=${Bun.version} postgres=${pg?.server_version}`;
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
  await runWrk(url, { ...options, seconds: WARMUP_SECONDS });
  return runWrk(url, { ...options, seconds });
}

async function startServers(options: Options, dataDir: string, cleanup: Cleanup) {
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
  const petbooks = await startPinnedServer({
    name: "petbooks",
    cmd: [BINARY, "serve"],
    env: childEnv({ ...env, PORT: String(petbooksPort), DATA_DIR: dataDir }),
    port: petbooksPort,
    core: SERVER_CORE,
  });
  cleanup.defer(petbooks.stop);
  const ceiling = await startPinnedServer({
    name: "ceiling",
    cmd: [process.execPath, CEILING_SCRIPT],
    env: childEnv({ ...env, PORT: String(ceilingPort) }),
    port: ceilingPort,
    core: SERVER_CORE,
  });
  cleanup.defer(ceiling.stop);
  return { petbooks, ceiling };
}

async function benchListing(options: Options, dataDir: string, cleanup: Cleanup) {
  const { petbooks, ceiling } = await startServers(options, dataDir, cleanup);
  const results: VariantResult[] = [];
  for (const variant of VARIANTS) {
    await assertSameItems(petbooks, ceiling, variant);
    progress(`loading ${variant.name}`);
    results.push({
      name: variant.name,
      petbooks: await load(petbooks, variant, options.seconds),
      ceiling: await load(ceiling, variant, options.seconds),
    });
  }
  // Stopped now so that they do not compete with the exports.
  await Promise.all([petbooks.stop(), ceiling.stop()]);
  return results;
}

async function benchExport(label: string, dataDir: string, sql: postgres.Sql) {
  progress(`export-pets over ${label} pets`);
  const run = await timeExport(benchDatabaseUrl, dataDir);
  const { pets } = await seedSummary(sql);
  return { label, pets, run } satisfies ExportResult;
}

async function bench(options: Options, cleanup: Cleanup): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "petbooks-bench-"));
  cleanup.defer(() => rmSync(dataDir, { recursive: true, force: true }));
  if (await ensureBinary()) progress("built ./petbooks (it was missing or older than its sources)");

  await recreateBenchDatabase();
  cleanup.defer(dropBenchDatabase);
  const dbEnv = childEnv({ DATABASE_URL: benchDatabaseUrl, DATA_DIR: dataDir, LOG_LEVEL: "warn" });
  await runChecked([BINARY, "migrate"], dbEnv);
  const sql = connect(benchDatabaseUrl);
  cleanup.defer(() => sql.end({ timeout: 5 }));

  console.log(await machineLine(sql));
  await seed(sql, LISTING_PETS);

  const listing = await benchListing(options, dataDir, cleanup);
  console.log(
    `\nGET /pets (limit 20): wrk -t1 -c${CONNECTIONS} -d${options.seconds}s --latency after a ` +
      `${WARMUP_SECONDS} s warm-up; servers on core ${SERVER_CORE}, wrk on core ${WRK_CORE}, ` +
      `PostgreSQL unpinned; pool ${options.poolSize}`,
  );
  console.log(listingReport(listing));

  const exports = [await benchExport("100k", dataDir, sql)];
  if (!options.skip1m) {
    // Same seeding approach, so the photo share stays about the same.
    await seed(sql, LARGE_EXPORT_PETS - LISTING_PETS);
    exports.push(await benchExport("1M", dataDir, sql));
  }
  console.log(exportReport(exports));
}

async function main(): Promise<number> {
  const options = parseOptions(Bun.argv.slice(2));
  if (!options) {
    console.log(USAGE);
    return 0;
  }
  const cleanup = new Cleanup();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void cleanup.run().finally(() => process.exit(130)));
  }
  try {
    await bench(options, cleanup);
    return 0;
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    return 1;
  } finally {
    progress("cleaning up");
    await cleanup.run();
  }
}

process.exit(await main());
