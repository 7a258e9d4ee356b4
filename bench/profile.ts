/**
 * Where `petbooks serve` spends its CPU on one request under load: the server runs from the
 * sources under `bun --cpu-prof`, wrk loads one path, and the profile is summed up by part of the
 * program (petbooks, Elysia, the driver, ...) and by function, with a flame graph. With `--grpc`,
 * `petbooks grpc` under h2load, one method as bench/scenarios/grpc.ts calls it.
 *
 *   bun bench/profile.ts --path '/pets?has_photos=true' --write-docs
 *   bun bench/profile.ts --grpc GetBook --write-docs
 *
 * writes docs/profiles/<name>.md and .svg (the name from the path or the method; with
 * `--embedded`, of petbooks on PGlite, `-embedded` added). Needs PostgreSQL (as bench/run.ts),
 * wrk or h2load, and taskset; creates and finally drops the database petbooks_bench_profile.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runBench } from "./lib/cleanup.ts";
import { API_KEY, openWorkspace, POOL_OPTION, progress } from "./lib/context.ts";
import { flameGraphSvg, summarize, timedTree } from "./lib/cpu-profile.ts";
import { seedBooks, seedPets, withSql } from "./lib/database.ts";
import { loadAverage } from "./lib/machine.ts";
import type { Options } from "./lib/options.ts";
import {
  cpuMeter,
  cpuSeconds,
  freePorts,
  LOAD_CORE,
  ROOT,
  type RunningServer,
} from "./lib/processes.ts";
import { fmt, markdownTable } from "./lib/report.ts";
import { bearerToken, startGrpc, startServe } from "./lib/servers.ts";
import { loadServer } from "./lib/wrk.ts";
import {
  GRPC_LOAD_NAME,
  loadMethod,
  METHODS,
  type Method,
  requestFrame,
} from "./scenarios/grpc.ts";
import { EMBEDDED_PLACEMENT, seedEmbedded } from "./scenarios/pets.ts";

const OPTIONS = {
  path: { text: "/pets", help: "the path loaded (GET), e.g. /books?limit=20" },
  seconds: { int: 10, help: "seconds of load while profiling, after 2 s of warm-up" },
  connections: { int: 64, help: "wrk connections" },
  pool: POOL_OPTION,
  rows: { int: 100_000, help: "pets and books seeded" },
  embedded: { flag: true, help: "petbooks on its embedded defaults (PGlite), seeded alike" },
  grpc: {
    choices: METHODS,
    help: "profile `petbooks grpc` under h2load calling this method, instead of a GET path",
  },
  writeDocs: { flag: true, help: "write docs/profiles/<name>.md and .svg" },
  save: { help: "also copy the raw .cpuprofile to this file" },
} as const;

const percent = (share: number) => `${(share * 100).toFixed(1)}%`;
const WARMUP_SECONDS = 2;

type ProfileOptions = Options<typeof OPTIONS>;

interface ProfiledStart {
  ws: Awaited<ReturnType<typeof openWorkspace>>;
  port: number;
  /** Bun under --cpu-prof, to which the script and its command are added. */
  cmd: string[];
  dataDir: string;
  subject: string;
}

/** What a profiled server did under load. */
interface ProfiledLoad {
  server: RunningServer;
  load: { rate: number; cpuUs: number; unit: string; generator: string };
  /** The load average as the load began. */
  loadedAt: string;
}

/** `petbooks serve` from the sources, under wrk on `o.path`. */
async function profileServe(o: ProfileOptions, start: ProfiledStart): Promise<ProfiledLoad> {
  const { ws, dataDir } = start;
  const headers: Record<string, string> = o.path.startsWith("/books")
    ? { authorization: await bearerToken(ws) }
    : { "x-api-key": API_KEY };
  const env: Record<string, string> = o.embedded
    ? { DATA_DIR: dataDir }
    : { DATABASE_URL: ws.databaseUrl, DATA_DIR: dataDir };
  const server = await startServe(
    ws,
    "petbooks serve (profiled)",
    start.port,
    env,
    [...start.cmd, join(ROOT, "src/main.ts"), "serve"],
    o.embedded ? EMBEDDED_PLACEMENT : {},
  );
  const loadedAt = loadAverage();
  progress(`profiling ${start.subject} for ${o.seconds} s`);
  const run = await loadServer(server, o.path, {
    connections: o.connections,
    core: LOAD_CORE,
    headers,
    seconds: o.seconds,
    warmup: WARMUP_SECONDS,
  });
  const load = {
    rate: run.rps,
    cpuUs: run.cpuUs,
    unit: "request",
    generator: `wrk -c${o.connections}`,
  };
  return { server, load, loadedAt };
}

/** `petbooks grpc` from the sources, under h2load calling `method` as the report does. */
async function profileGrpc(
  method: Method,
  o: ProfileOptions,
  start: ProfiledStart,
): Promise<ProfiledLoad> {
  const { ws } = start;
  const authorization = await bearerToken(ws);
  const id = await withSql(ws.databaseUrl, async (sql) => {
    const [row] = await sql<{ id: string }[]>`select id from books order by id limit 1`;
    if (!row) throw new Error("no book to ask for");
    return row.id;
  });
  const dataFile = join(ws.dir, "request.grpc");
  writeFileSync(dataFile, requestFrame(method, id));
  const server = await startGrpc(
    ws,
    "petbooks grpc (profiled)",
    [...start.cmd, join(ROOT, "src/main.ts"), "grpc"],
    start.port,
    { id, authorization },
  );
  const loadedAt = loadAverage();
  progress(`profiling ${start.subject} for ${o.seconds} s`);
  const serverCpu = cpuMeter(() => cpuSeconds(server.pid));
  const run = await loadMethod(server, method, {
    dataFile,
    authorization,
    seconds: o.seconds,
    warmupSeconds: WARMUP_SECONDS,
    logFile: join(ws.dir, "h2load.log"),
  });
  if (run.failures > 0) throw new Error(`${run.failures} calls failed under h2load`);
  const calls = run.callsPerSecond * (o.seconds + WARMUP_SECONDS);
  const load = {
    rate: run.callsPerSecond,
    cpuUs: serverCpu(calls),
    unit: "call",
    generator: GRPC_LOAD_NAME,
  };
  return { server, load, loadedAt };
}

await runBench({
  script: "bench/profile.ts",
  options: OPTIONS,
  run: async (o, cleanup) => {
    const ws = await openWorkspace(cleanup, {
      name: "profile",
      database: "petbooks_bench_profile",
      pool: o.pool,
    });
    const dataDir = join(ws.dir, "data");
    if (o.embedded) {
      progress(`seeding ${o.rows} pets in the embedded database`);
      await seedEmbedded(ws, dataDir, o.rows);
    } else {
      progress(`seeding ${o.rows} pets and books`);
      await seedPets(ws.sql, o.rows);
      await seedBooks(ws.sql, o.rows);
    }
    const profileDir = join(ws.dir, "profile");
    const [port] = (await freePorts(1)) as [number];
    const cmd = [process.execPath, "--cpu-prof", `--cpu-prof-dir=${profileDir}`];
    const subject = o.grpc ? `gRPC ${o.grpc}` : `GET ${o.path}`;
    const start = { ws, port, cmd, dataDir, subject };
    // parseOptions has checked --grpc against its choices, the methods.
    const method = o.grpc as Method | undefined;
    const { server, load, loadedAt } = method
      ? await profileGrpc(method, o, start)
      : await profileServe(o, start);
    // The whole life of the process so far, as the profile covers it.
    const cpuUsedUs = cpuSeconds(server.pid) * 1e6;
    await server.stop(30_000);
    const file = readdirSync(profileDir).find((f) => f.endsWith(".cpuprofile"));
    if (!file) throw new Error(`no profile was written to ${profileDir}`);
    const raw = readFileSync(join(profileDir, file), "utf8");
    if (o.save) writeFileSync(o.save, raw);
    const tree = timedTree(JSON.parse(raw));
    const summary = summarize(tree);
    const name = o.grpc
      ? `grpc-${o.grpc.toLowerCase()}`
      : `get-${o.path.replaceAll(/[^a-z0-9]+/gi, "-").replace(/^-|-$/g, "")}` +
        (o.embedded ? "-embedded" : "");
    const shown = o.grpc ? `gRPC \`${o.grpc}\`` : `GET \`${o.path}\``;
    const command = o.grpc
      ? `bun bench/profile.ts --grpc ${o.grpc} --write-docs`
      : `bun bench/profile.ts --path '${o.path}'${o.embedded ? " --embedded" : ""} --write-docs`;
    const figures =
      `${fmt.int(load.rate)} ${load.unit}s/s, ${fmt.int(load.cpuUs)} µs CPU per ${load.unit} ` +
      `(${load.generator}, ${o.seconds} s${o.embedded ? "" : `, pool ${o.pool}`}, ` +
      `load average ${loadedAt} at start)`;
    const title = `${subject}${o.embedded ? " (embedded)" : ""}: ${figures}`;
    const markdown = [
      `# Profile of ${shown}${o.embedded ? " (embedded)" : ""}: ${figures}`,
      "",
      `\`${command}\`, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC. ` +
        "Shares of the profile's samples (it covers start-up and warm-up too). Time in Bun's own " +
        "functions (JSON, sockets) is charged to the part of the program that called them. " +
        `The samples add up to ${(summary.busyUs / 1e6).toFixed(1)} s, while the server used ` +
        `${(cpuUsedUs / 1e6).toFixed(1)} s of CPU in its life: Bun's profiler marks no idle ` +
        "time, so the rest is the server waiting, charged to frames that were on the stack " +
        "(writeBuffered, postgres.js's socket write, is probably mostly such waiting). The " +
        "shares are a guide to where to look; what a change buys is measured by bench/run.ts. " +
        `Flame graph: [${name}.svg](${name}.svg).`,
      "",
      markdownTable(
        ["part of the program", "share"],
        summary.parts.map((p) => [p.part, percent(p.share)]),
      ),
      "",
      markdownTable(
        ["function (own time)", "part", "share"],
        summary.functions.map((f) => [`\`${f.label}\``, f.part, percent(f.share)]),
      ),
      "",
    ].join("\n");
    console.log(markdown);
    if (o.writeDocs) {
      const dir = join(ROOT, "docs", "profiles");
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${name}.md`), markdown);
      writeFileSync(join(dir, `${name}.svg`), flameGraphSvg(tree, title));
      progress(`docs/profiles/${name}.md and .svg written`);
    }
  },
});
