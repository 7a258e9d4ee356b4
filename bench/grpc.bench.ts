/**
 * petbooks over real gRPC, on 100,000 books in PostgreSQL: GetBook and ListBooks (a first page of
 * 50) driven by h2load (HTTP/2, connections kept open, several streams each), against a ceiling in
 * the same run: a bare connect-node BookService on node:http2 in Bun running the same SQL
 * (bench/grpc-ceiling-server.ts). Target: petbooks calls/s at least 0.8 of the ceiling's.
 *
 *   bun bench/grpc.bench.ts [--duration 10] [--warmup 2] [--clients 8] [--streams 16]
 *                           [--pool 10] [--rounds 3] [--books 100000] [--quiet-wait 1200]
 *
 * Both servers are built like `bun run build` (into a private directory) and run pinned to core
 * 0, h2load to core 1 (PostgreSQL unpinned). Before measuring it waits (at most --quiet-wait
 * seconds, polling every 30 s) until no other benchmark runs and the 1-minute load is under 1.5.
 * Creates and finally drops the database petbooks_bench_grpc, and touches no other.
 *
 * h2load sends one body for every request, so GetBook asks for the same book each time: it
 * measures the per-call path, not PostgreSQL's cache misses. h2load only sees HTTP 200, so each
 * server's answers are checked first by real gRPC clients (Connect, and `buf curl`), and each run's
 * response bytes per call must equal the size of the OK answer.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.ts";
import {
  BookSchema,
  BookService,
  GetBookRequestSchema,
  ListBooksRequestSchema,
  ListBooksResponseSchema,
} from "../src/gen/petbooks/v1/books_pb.ts";
import { bufCurl } from "../src/grpc/test-server.ts";
import {
  buildBinaries,
  dropDatabase,
  foreignCores,
  grpcClient,
  grpcFrame,
  type H2loadResult,
  h2load,
  LOAD_CORE,
  loadAverage,
  machineFacts,
  migrate,
  type PinnedServer,
  recreateDatabase,
  SERVER_CORE,
  seed,
  startPinnedServer,
  waitForQuietMachine,
  withSql,
} from "./grpc-lib.ts";
import { type Cleanup, runBench } from "./lib/cleanup.ts";
import { integerOption } from "./lib/options.ts";
import { childEnv, freePorts } from "./lib/processes.ts";
import { table } from "./lib/report.ts";

const DATABASE = "petbooks_bench_grpc";
const TARGET_RATIO = 0.8;
const PAGE_SIZE = 50;
const MAX_LOAD = 1.5;
const QUIET_POLL_SECONDS = 30;
/** A run during which other processes used this many cores is made again (at most twice). */
const DISTURBED_CORES = 0.15;
const MAX_ATTEMPTS = 3;
const GRPC_HEADERS = ["content-type: application/grpc", "te: trailers"];
/** Calls of the check run per server and method (see below). */
const CHECK_CALLS = 5_000;

interface Options {
  seconds: number;
  warmup: number;
  clients: number;
  streams: number;
  pool: number;
  rounds: number;
  books: number;
  quietWait: number;
}

const USAGE =
  "usage: bun bench/grpc.bench.ts [--duration S] [--warmup S] [--clients N] [--streams N] " +
  "[--pool N] [--rounds N] [--books N] [--quiet-wait S]";

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      clients: { type: "string", default: "8" },
      streams: { type: "string", default: "16" },
      pool: { type: "string", default: "10" },
      rounds: { type: "string", default: "3" },
      books: { type: "string", default: "100000" },
      "quiet-wait": { type: "string", default: "1200" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return undefined;
  return {
    seconds: integerOption(values.duration, "duration"),
    warmup: integerOption(values.warmup, "warmup", 0),
    clients: integerOption(values.clients, "clients"),
    streams: integerOption(values.streams, "streams"),
    pool: integerOption(values.pool, "pool"),
    rounds: integerOption(values.rounds, "rounds"),
    books: integerOption(values.books, "books"),
    quietWait: integerOption(values["quiet-wait"], "quiet-wait", 0),
  };
}

const progress = (message: string) =>
  console.error(`· ${message} (load ${loadAverage().toFixed(2)})`);

type Method = "GetBook" | "ListBooks";
const METHODS: Method[] = ["GetBook", "ListBooks"];

interface Target {
  name: "petbooks" | "ceiling";
  server: PinnedServer;
}

interface Measured extends H2loadResult {
  foreignCores: number;
  attempts: number;
}

/** Calls both servers with Connect and `buf curl`: grpc-status OK, and the same bytes from both. */
async function verifyAnswers(targets: Target[], id: string) {
  const bodies = new Map<string, Uint8Array[]>();
  for (const { name, server } of targets) {
    const { client, close } = grpcClient(server.url, BookService);
    try {
      const book = await client.getBook({ id });
      const page = await client.listBooks({ pageSize: PAGE_SIZE });
      if (book.id !== id) throw new Error(`${name} GetBook answered book ${book.id}, not ${id}`);
      if (page.books.length !== PAGE_SIZE || page.nextPageToken === "") {
        throw new Error(`${name} ListBooks answered ${page.books.length} books`);
      }
      bodies.set(name, [toBinary(BookSchema, book), toBinary(ListBooksResponseSchema, page)]);
      const next = await client.listBooks({ pageSize: PAGE_SIZE, pageToken: page.nextPageToken });
      if (next.books[0]?.id === page.books[0]?.id) throw new Error(`${name}: page 2 = page 1`);
    } finally {
      close();
    }
    for (const [method, data] of [
      ["GetBook", { id }],
      ["ListBooks", { page_size: PAGE_SIZE }],
    ] as const) {
      const res = await bufCurl(`${server.url}/petbooks.v1.BookService/${method}`, [
        "--schema",
        join(import.meta.dir, "..", "proto"),
        "--data",
        JSON.stringify(data),
      ]);
      if (res.code !== 0) {
        throw new Error(`buf curl ${method} on ${name} exited ${res.code}: ${res.stderr}`);
      }
      const answer = JSON.parse(res.stdout) as { id?: string; books?: unknown[] };
      const ok = method === "GetBook" ? answer.id === id : answer.books?.length === PAGE_SIZE;
      if (!ok) throw new Error(`buf curl ${method} on ${name}: unexpected ${res.stdout}`);
      progress(`buf curl ${method} on ${name}: grpc-status OK`);
    }
  }
  const [a, b] = [bodies.get("petbooks"), bodies.get("ceiling")];
  const same = (x?: Uint8Array, y?: Uint8Array) => !!x && !!y && Buffer.from(x).equals(y);
  if (!same(a?.[0], b?.[0]) || !same(a?.[1], b?.[1])) {
    throw new Error("petbooks and the ceiling do not answer the same bytes");
  }
  progress("petbooks and the ceiling answer byte-identical GetBook and ListBooks messages");
  return {
    GetBook: 5 + (a?.[0]?.length ?? 0),
    ListBooks: 5 + (a?.[1]?.length ?? 0),
  } satisfies Record<Method, number>;
}

/** What is wrong with a run: failures, non-2xx, or (when given) other than OK answers' bytes. */
function checkRun(r: H2loadResult, expectedBytes?: number): string | undefined {
  const problems: string[] = [];
  if (r.failed + r.errored + r.timeout > 0) {
    problems.push(`${r.failed} failed, ${r.errored} errored, ${r.timeout} timed out`);
  }
  if (r.statusOther > 0) problems.push(`${r.statusOther} non-2xx`);
  if (expectedBytes !== undefined && Math.abs(r.dataBytesPerCall - expectedBytes) > 0.001) {
    problems.push(
      `${r.dataBytesPerCall.toFixed(1)} response bytes per call, not ${expectedBytes} (non-OK answers)`,
    );
  }
  return problems.length ? problems.join("; ") : undefined;
}

async function run(options: Options, cleanup: Cleanup): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "petbooks-grpc-bench-"));
  cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
  const quiet = await waitForQuietMachine(
    [dir, DATABASE, "grpc.bench.ts"],
    { maxLoad: MAX_LOAD, pollSeconds: QUIET_POLL_SECONDS, maxSeconds: options.quietWait },
    progress,
  );
  const quietLine = quiet.quiet
    ? `machine quiet before measuring: yes (no other benchmark, load ${quiet.load.toFixed(2)} < ${MAX_LOAD}, waited ${quiet.waitedSeconds.toFixed(0)} s)`
    : `machine quiet before measuring: NO after ${quiet.waitedSeconds.toFixed(0)} s (load ${quiet.load.toFixed(2)}; ${quiet.others.length} other benchmark processes: ${quiet.others.slice(0, 3).join(" | ")})`;
  progress(quietLine);

  progress("building petbooks and the ceiling (bun build --compile --minify --sourcemap)");
  const bin = await buildBinaries(dir);
  const url = await recreateDatabase(DATABASE);
  cleanup.defer(() => dropDatabase(DATABASE));
  await migrate(bin.petbooks, url);
  progress(`seeding ${options.books} books`);
  const seeded = await seed(url, options.books);
  if (seeded !== options.books) throw new Error(`book_stats says ${seeded} books`);
  // A book from the middle of the table: the one id every GetBook of h2load asks for.
  const id = await withSql(url, async (sql) => {
    const [row] = await sql<{ id: string }[]>`
      select id from books order by id offset ${Math.floor(options.books / 2)} limit 1`;
    if (!row) throw new Error("no book to ask for");
    return row.id;
  });

  const bodies: Record<Method, string> = {
    GetBook: join(dir, "get-book.grpc"),
    ListBooks: join(dir, "list-books.grpc"),
  };
  writeFileSync(
    bodies.GetBook,
    grpcFrame(toBinary(GetBookRequestSchema, create(GetBookRequestSchema, { id }))),
  );
  writeFileSync(
    bodies.ListBooks,
    grpcFrame(
      toBinary(ListBooksRequestSchema, create(ListBooksRequestSchema, { pageSize: PAGE_SIZE })),
    ),
  );

  const [petbooksPort, ceilingPort] = (await freePorts(2)) as [number, number];
  const env = (port: number) =>
    childEnv({
      DATABASE_URL: url,
      DATABASE_POOL_SIZE: String(options.pool),
      HOST: "127.0.0.1",
      GRPC_PORT: String(port),
      LOG_LEVEL: "warn",
    });
  const petbooks = await startPinnedServer({
    name: "petbooks grpc",
    cmd: [bin.petbooks, "grpc"],
    env: env(petbooksPort),
    port: petbooksPort,
    core: SERVER_CORE,
    logFile: join(dir, "petbooks.log"),
    ready: async (base) => {
      const { client, close } = grpcClient(base, Health);
      try {
        const res = await client.check({ service: "" }, { timeoutMs: 1000 });
        return res.status === HealthCheckResponse_ServingStatus.SERVING;
      } finally {
        close();
      }
    },
  });
  cleanup.defer(petbooks.stop);
  const ceiling = await startPinnedServer({
    name: "ceiling",
    cmd: [bin.ceiling],
    env: env(ceilingPort),
    port: ceilingPort,
    core: SERVER_CORE,
    logFile: join(dir, "ceiling.log"),
    ready: async (base) => {
      const { client, close } = grpcClient(base, BookService);
      try {
        return (await client.getBook({ id }, { timeoutMs: 1000 })).id === id;
      } finally {
        close();
      }
    },
  });
  cleanup.defer(ceiling.stop);
  const targets: Target[] = [
    { name: "petbooks", server: petbooks },
    { name: "ceiling", server: ceiling },
  ];
  const expectedBytes = await verifyAnswers(targets, id);

  // A fixed number of calls at the same concurrency, where h2load's byte count is exact: every
  // call must have got the OK answer's frame (an error status has no message). Warms up, too.
  for (const method of METHODS) {
    for (const target of targets) {
      const run = await h2load({
        url: `${target.server.url}/petbooks.v1.BookService/${method}`,
        dataFile: bodies[method],
        headers: GRPC_HEADERS,
        clients: options.clients,
        streams: options.streams,
        seconds: 0,
        warmupSeconds: 0,
        requests: CHECK_CALLS,
        core: LOAD_CORE,
        logFile: join(dir, `${method}-${target.name}-check.log`),
      });
      const problem = checkRun(run, expectedBytes[method]);
      if (problem) throw new Error(`${method} on ${target.name}: ${problem}\n${run.output}`);
    }
  }
  progress(
    `h2load -n ${CHECK_CALLS}: every call on both servers got the OK answer ` +
      `(${expectedBytes.GetBook} / ${expectedBytes.ListBooks} bytes)`,
  );

  const markers = [dir, DATABASE];
  /** Waits (at most 10 s) for a second in which other processes use little CPU. */
  const settle = async () => {
    for (let i = 0; i < 10; i++) {
      const { foreignCores: idle } = await foreignCores(
        markers,
        () => Bun.sleep(1000),
        () => 0,
      );
      if (idle < DISTURBED_CORES) return;
    }
  };
  const results: Record<Method, Record<Target["name"], Measured[]>> = {
    GetBook: { petbooks: [], ceiling: [] },
    ListBooks: { petbooks: [], ceiling: [] },
  };
  const measure = async (method: Method, target: Target, round: number) => {
    let best: Measured | undefined;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      await settle();
      const { value, foreignCores: other } = await foreignCores(
        markers,
        () =>
          h2load({
            url: `${target.server.url}/petbooks.v1.BookService/${method}`,
            dataFile: bodies[method],
            headers: GRPC_HEADERS,
            clients: options.clients,
            streams: options.streams,
            seconds: options.seconds,
            warmupSeconds: options.warmup,
            core: LOAD_CORE,
            logFile: join(dir, `${method}-${target.name}-${round}-${attempt}.log`),
            serverPid: target.server.pid,
          }),
        (r) => r.h2loadCpuMs,
      );
      const exited = target.server.exitReason();
      if (exited) throw new Error(`${target.server.name} ${exited} under load`);
      const problem = checkRun(value);
      if (problem) throw new Error(`${method} on ${target.name}: ${problem}\n${value.output}`);
      const run = { ...value, foreignCores: other, attempts: attempt };
      if (!best || run.foreignCores < best.foreignCores) best = run;
      progress(
        `round ${round} ${method} ${target.name}: ${value.callsPerSecond.toFixed(0)} calls/s, ` +
          `p50 ${value.p50Ms.toFixed(2)} ms, p99 ${value.p99Ms.toFixed(2)} ms, server ` +
          `${value.serverCpuUsPerCall.toFixed(0)} µs CPU/call (other processes: ` +
          `${other.toFixed(2)} cores)`,
      );
      if (other < DISTURBED_CORES) break;
    }
    if (best) results[method][target.name].push(best);
  };
  for (let round = 1; round <= options.rounds; round++) {
    for (const method of METHODS) {
      // Alternate which server goes first, so neither always follows the other's load.
      const order = round % 2 === 1 ? targets : [...targets].reverse();
      for (const target of order) await measure(method, target, round);
    }
  }

  const example = results.GetBook.petbooks[0];
  const logLines = async (server: PinnedServer) =>
    (await Bun.file(server.logFile).text()).split("\n").filter((l) => l.trim() !== "");
  const petbooksLog = await logLines(petbooks);
  const ceilingLog = await logLines(ceiling);
  const alive = targets.map((t) => `${t.name}: ${t.server.exitReason() ?? "running"}`);

  const median = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2
      ? (sorted[mid] ?? 0)
      : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  };
  const rows: string[][] = [];
  const verdicts: string[] = [];
  const disturbed: string[] = [];
  for (const method of METHODS) {
    const p = results[method].petbooks;
    const c = results[method].ceiling;
    const pRps = median(p.map((r) => r.callsPerSecond));
    const cRps = median(c.map((r) => r.callsPerSecond));
    const ratio = pRps / cRps;
    const best =
      Math.max(...p.map((r) => r.callsPerSecond)) / Math.max(...c.map((r) => r.callsPerSecond));
    const pCpu = median(p.map((r) => r.serverCpuUsPerCall));
    const cCpu = median(c.map((r) => r.serverCpuUsPerCall));
    const verdict = ratio >= TARGET_RATIO ? "met" : "MISSED";
    verdicts.push(`${method} ${verdict} (${ratio.toFixed(2)})`);
    for (const r of [...p, ...c]) if (r.foreignCores >= DISTURBED_CORES) disturbed.push(method);
    rows.push([
      method,
      pRps.toFixed(0),
      median(p.map((r) => r.p50Ms)).toFixed(2),
      median(p.map((r) => r.p99Ms)).toFixed(2),
      pCpu.toFixed(0),
      cRps.toFixed(0),
      median(c.map((r) => r.p50Ms)).toFixed(2),
      median(c.map((r) => r.p99Ms)).toFixed(2),
      cCpu.toFixed(0),
      ratio.toFixed(2),
      best.toFixed(2),
      (cCpu / pCpu).toFixed(2),
      verdict,
    ]);
  }
  const perRun: string[][] = [];
  for (const method of METHODS) {
    for (const name of ["petbooks", "ceiling"] as const) {
      results[method][name].forEach((r, i) => {
        perRun.push([
          `${method} ${name} #${i + 1}`,
          r.callsPerSecond.toFixed(0),
          r.p50Ms.toFixed(2),
          r.p99Ms.toFixed(2),
          r.meanMs.toFixed(2),
          r.maxMs.toFixed(1),
          String(r.succeeded),
          String(r.logged),
          r.serverCpuUsPerCall.toFixed(0),
          r.foreignCores.toFixed(2),
          String(r.attempts),
        ]);
      });
    }
  }

  console.log("\n== petbooks gRPC vs a bare connect-node ceiling (h2load) ==");
  console.log(`machine: ${machineFacts()}`);
  console.log(quietLine);
  console.log(
    `database: ${options.books} books in PostgreSQL (${DATABASE}), pool ${options.pool} per ` +
      `server, no cache (REDIS_URL unset), LOG_LEVEL=warn`,
  );
  console.log(
    `load: h2load -c ${options.clients} -m ${options.streams} (${options.clients * options.streams} ` +
      `calls in flight), ${options.warmup} s warm-up + ${options.seconds} s per run, ` +
      `${options.rounds} rounds; servers on core ${SERVER_CORE}, h2load on core ${LOAD_CORE}`,
  );
  console.log(
    `GetBook asks for the same book (${id}) every call (h2load sends one body); ` +
      `ListBooks page_size ${PAGE_SIZE}, first page, total_size from book_stats`,
  );
  console.log(`example: ${example?.command ?? ""}`);
  console.log(
    `answers checked: Connect + buf curl grpc-status OK on both; byte-identical messages; ` +
      `h2load -n ${CHECK_CALLS} at the same concurrency got exactly ${expectedBytes.GetBook} ` +
      `(GetBook) / ${expectedBytes.ListBooks} (ListBooks) response bytes per call on both ` +
      "(OK answers only); every measured run 0 failed/errored, only 2xx",
  );
  console.log(
    "\nper run (latency percentiles from h2load --log-file, every measured request; server " +
      "CPU from /proc over the measured part; other cores = machine busy time minus ours; a " +
      `run with >= ${DISTURBED_CORES} was made again, at most ${MAX_ATTEMPTS} tries, the least ` +
      "disturbed kept):",
  );
  console.log(
    table(
      [
        "run",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "mean ms",
        "max ms",
        "succeeded",
        "logged",
        "µs CPU/call",
        "other cores",
        "tries",
      ],
      perRun,
    ),
  );
  console.log(`\nsummary (median of ${options.rounds} rounds):`);
  console.log(
    table(
      [
        "method",
        "petbooks calls/s",
        "p50 ms",
        "p99 ms",
        "µs CPU/call",
        "ceiling calls/s",
        "p50 ms",
        "p99 ms",
        "µs CPU/call",
        "ratio",
        "best/best",
        "CPU ratio",
        `>= ${TARGET_RATIO}`,
      ],
      rows,
    ),
  );
  console.log(
    "ratio = petbooks calls/s / ceiling calls/s (medians); best/best = the same with each " +
      "side's best run; CPU ratio = ceiling µs CPU per call / petbooks' (less sensitive to " +
      "other load on the machine)",
  );
  if (disturbed.length > 0) {
    console.log(
      `NOTE: some runs stayed disturbed by other processes (${[...new Set(disturbed)].join(", ")})`,
    );
  }
  console.log(`verdict: ${verdicts.join(", ")}`);
  console.log(`servers after the runs: ${alive.join(", ")}`);
  console.log(
    `server log lines at LOG_LEVEL=warn: petbooks ${petbooksLog.length}, ceiling ${ceilingLog.length}` +
      (petbooksLog.length ? `; first: ${petbooksLog[0]?.slice(0, 200)}` : ""),
  );
  const all = [...results.GetBook.petbooks, ...results.ListBooks.petbooks];
  return all.length > 0 && verdicts.every((v) => !v.includes("MISSED")) ? 0 : 1;
}

await runBench({ usage: USAGE, parseOptions, run });
