/**
 * Endurance of `petbooks grpc`: many calls from several concurrent clients, a share of them
 * cancelled mid-call or cut off by a client that drops its connection, while the server's RSS and
 * open file descriptors are sampled. At the end the server must still be running, answer a health
 * check and a GetBook, and its RSS must not have kept growing.
 *
 *   bun bench/grpc-endurance.ts [--calls 500000] [--books 1000] [--lanes 48] [--pool 10]
 *
 * The mix (every call counts toward --calls):
 *   - normal calls, 75%: GetBook (a few per cent for an id that does not exist, or is not a
 *     UUID: NOT_FOUND / INVALID_ARGUMENT expected) and ListBooks (random page size, sometimes the
 *     next page), by @grpc/grpc-js clients (the .proto loaded by @grpc/proto-loader, each client
 *     its own connection) and Connect clients (createGrpcTransport, each its own HTTP/2 session);
 *   - cancelled calls, 20%: grpc-js `call.cancel()` or an aborted AbortSignal (Connect) after a
 *     random tiny delay (none, a macrotask, 0-3 ms), and a few health Watch streams cancelled
 *     after their first message;
 *   - dropped connections, 5%: a raw node:http2 session that starts 1-4 calls (some with the
 *     request body never finished), then is destroyed after a random tiny delay, or resets its
 *     streams (RST_STREAM CANCEL).
 *
 * The server is built like `bun run build` (into a private directory), pinned to core 0, LOG_LEVEL
 * warn; this driver pins itself to core 1. Creates and finally drops the database
 * petbooks_bench_grpc_endurance, and touches no other.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.ts";
import {
  BookSchema,
  BookService,
  GetBookRequestSchema,
  ListBooksRequestSchema,
} from "../src/gen/petbooks/v1/books_pb.ts";
import { PROTO_DIR } from "../src/grpc/test-server.ts";
import {
  buildPetbooks,
  dropDatabase,
  grpcClient,
  grpcFrame,
  LOAD_CORE,
  loadAverage,
  machineFacts,
  migrate,
  openFds,
  type PinnedServer,
  recreateDatabase,
  rssMb,
  SERVER_CORE,
  seed,
  startPinnedServer,
  withSql,
} from "./grpc-lib.ts";
import { type Cleanup, runBench } from "./lib/cleanup.ts";
import { integerOption } from "./lib/options.ts";
import { childEnv, freePorts } from "./lib/processes.ts";
import { table } from "./lib/report.ts";

const DATABASE = "petbooks_bench_grpc_endurance";
const SAMPLE_EVERY_MS = 3_000;
const PROGRESS_EVERY_MS = 10_000;
/** RSS is compared from this share of the calls on (allocator, JIT and pools warmed up). */
const WARMUP_SHARE = 0.1;
/** The RSS at the end may exceed the one after warm-up by this factor at most. */
const MAX_RSS_GROWTH = 1.25;
const GRPC_JS_CLIENTS = 4;
const CONNECT_CLIENTS = 4;

const USAGE = "usage: bun bench/grpc-endurance.ts [--calls N] [--books N] [--lanes N] [--pool N]";

interface Options {
  calls: number;
  books: number;
  lanes: number;
  pool: number;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      calls: { type: "string", default: "500000" },
      books: { type: "string", default: "1000" },
      lanes: { type: "string", default: "48" },
      pool: { type: "string", default: "10" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return undefined;
  return {
    calls: integerOption(values.calls, "calls"),
    books: integerOption(values.books, "books"),
    lanes: integerOption(values.lanes, "lanes"),
    pool: integerOption(values.pool, "pool"),
  };
}

const progress = (message: string) =>
  console.error(`· ${message} (load ${loadAverage().toFixed(2)})`);

/** Outcomes by kind of call: "kind: outcome" → count. Unexpected ones are listed apart. */
class Tally {
  readonly counts = new Map<string, number>();
  readonly unexpected = new Map<string, number>();
  /** An example message per unexpected outcome. */
  readonly examples = new Map<string, string>();
  calls = 0;

  add(kind: string, outcome: string) {
    const key = `${kind}: ${outcome}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  bad(kind: string, outcome: string, detail: string) {
    const key = `${kind}: ${outcome}`;
    this.unexpected.set(key, (this.unexpected.get(key) ?? 0) + 1);
    if (!this.examples.has(key)) this.examples.set(key, detail.slice(0, 200));
  }

  get unexpectedTotal() {
    let n = 0;
    for (const v of this.unexpected.values()) n += v;
    return n;
  }
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;
const chance = (p: number) => Math.random() < p;
const codeName = (code: number) => (Code[code] ?? `code ${code}`).toString();

/** A random tiny delay before cancelling: none, a microtask, a macrotask, or 0-3 ms. */
function tinyDelay(): Promise<void> {
  const r = Math.random();
  if (r < 0.15) return Promise.resolve();
  if (r < 0.3) return new Promise((resolve) => setImmediate(resolve));
  return Bun.sleep(Math.random() * 3);
}

/** A UUID that no book has (v4, while the books are seeded v4 too: a collision is hopeless). */
const missingId = () => crypto.randomUUID();

interface World {
  ids: string[];
  url: string;
  address: string;
  tally: Tally;
  grpcJs: grpc.Client[];
  connect: ReturnType<typeof grpcClient<typeof BookService>>[];
  health: ReturnType<typeof grpcClient<typeof Health>>;
}

/**
 * A grpc-js BookService client from proto/ (via @grpc/proto-loader) with a connection of its own:
 * grpc-js otherwise shares one connection between all clients of the same target.
 */
function newGrpcJsClient(address: string): grpc.Client {
  const definition = protoLoader.loadSync("petbooks/v1/books.proto", {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    petbooks: { v1: { BookService: typeof grpc.Client } };
  };
  return new pkg.petbooks.v1.BookService(address, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
  });
}

type GrpcJsUnary = (
  request: object,
  callback: (error: grpc.ServiceError | null, value?: unknown) => void,
) => grpc.ClientUnaryCall;

function grpcJsMethod(client: grpc.Client, name: "GetBook" | "ListBooks"): GrpcJsUnary {
  const method = (client as unknown as Record<string, GrpcJsUnary>)[name];
  if (!method) throw new Error(`no ${name}`);
  return method.bind(client);
}

/** A normal request: what to ask and which status codes count as right. */
function normalRequest(w: World): {
  method: "GetBook" | "ListBooks";
  body: { id: string } | { pageSize: number };
  ok: Code[];
} {
  const r = Math.random();
  if (r < 0.04)
    return { method: "GetBook" as const, body: { id: missingId() }, ok: [Code.NotFound] };
  if (r < 0.06) {
    return { method: "GetBook" as const, body: { id: "not-a-uuid" }, ok: [Code.InvalidArgument] };
  }
  if (r < 0.7) return { method: "GetBook" as const, body: { id: pick(w.ids) }, ok: [] };
  return {
    method: "ListBooks" as const,
    body: { pageSize: 1 + Math.floor(Math.random() * 100) },
    ok: [],
  };
}

async function normalCall(w: World) {
  const req = normalRequest(w);
  const viaGrpcJs = chance(0.5);
  const kind = `normal ${req.method} (${viaGrpcJs ? "grpc-js" : "connect"})`;
  let code = 0;
  let detail = "";
  if (viaGrpcJs) {
    const body =
      req.method === "GetBook"
        ? req.body
        : { page_size: (req.body as { pageSize: number }).pageSize };
    const err = await new Promise<grpc.ServiceError | null>((resolve) => {
      grpcJsMethod(pick(w.grpcJs), req.method)(body, (error) => resolve(error));
    });
    code = err?.code ?? 0;
    detail = err?.message ?? "";
  } else {
    const { client } = pick(w.connect);
    try {
      if (req.method === "GetBook") {
        await client.getBook(req.body as { id: string });
      } else {
        const page = await client.listBooks(req.body as { pageSize: number });
        // Sometimes the next page too (a second call), to use page tokens.
        if (page.nextPageToken !== "" && chance(0.3)) {
          await client.listBooks({ pageSize: 10, pageToken: page.nextPageToken });
          w.tally.calls++;
          w.tally.add(kind, "OK (next page)");
        }
      }
    } catch (err) {
      const e = ConnectError.from(err);
      code = e.code;
      detail = e.message;
    }
  }
  w.tally.calls++;
  if (code === 0 && req.ok.length === 0) w.tally.add(kind, "OK");
  else if (req.ok.includes(code)) w.tally.add(kind, `${codeName(code)} (expected)`);
  else w.tally.bad(kind, codeName(code), detail);
}

async function cancelledCall(w: World) {
  w.tally.calls++;
  const r = Math.random();
  if (r < 0.03) {
    // A health Watch stream, cancelled after its first message.
    const kind = "cancelled Health.Watch (connect)";
    const abort = new AbortController();
    try {
      for await (const res of w.health.client.watch({ service: "" }, { signal: abort.signal })) {
        if (res.status !== HealthCheckResponse_ServingStatus.SERVING) {
          w.tally.bad(kind, `status ${res.status}`, "not SERVING");
        }
        abort.abort();
      }
      w.tally.bad(kind, "ended", "the stream ended by itself");
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.Canceled) w.tally.add(kind, "CANCELLED (by us)");
      else w.tally.bad(kind, codeName(e.code), e.message);
    }
    return;
  }
  const get = chance(0.6);
  if (r < 0.5) {
    const kind = `cancelled ${get ? "GetBook" : "ListBooks"} (grpc-js)`;
    const body = get ? { id: pick(w.ids) } : { page_size: 100 };
    const err = await new Promise<grpc.ServiceError | null>((resolve) => {
      const call = grpcJsMethod(pick(w.grpcJs), get ? "GetBook" : "ListBooks")(body, (error) =>
        resolve(error),
      );
      void tinyDelay().then(() => call.cancel());
    });
    if (!err) w.tally.add(kind, "OK (answered before the cancel)");
    else if (err.code === grpc.status.CANCELLED) w.tally.add(kind, "CANCELLED (by us)");
    else w.tally.bad(kind, codeName(err.code), err.message);
    return;
  }
  const kind = `cancelled ${get ? "GetBook" : "ListBooks"} (connect)`;
  const abort = new AbortController();
  void tinyDelay().then(() => abort.abort());
  try {
    if (get) await pick(w.connect).client.getBook({ id: pick(w.ids) }, { signal: abort.signal });
    else await pick(w.connect).client.listBooks({ pageSize: 100 }, { signal: abort.signal });
    w.tally.add(kind, "OK (answered before the cancel)");
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code === Code.Canceled) w.tally.add(kind, "CANCELLED (by us)");
    else w.tally.bad(kind, codeName(e.code), e.message);
  }
}

const GET_BOOK_PATH = "/petbooks.v1.BookService/GetBook";
const LIST_BOOKS_PATH = "/petbooks.v1.BookService/ListBooks";

/**
 * A client that drops its connection mid-call: a raw HTTP/2 session starts 1-4 calls (a quarter
 * of them with the request body left unfinished), waits a tiny random delay, then destroys the
 * session (half the time) or resets each stream with RST_STREAM CANCEL.
 */
async function droppedConnection(w: World) {
  const session = http2.connect(w.url);
  session.on("error", () => {});
  const calls = 1 + Math.floor(Math.random() * 4);
  const destroySession = chance(0.5);
  const how = destroySession ? "session destroyed" : "streams reset";
  const streams = Array.from({ length: calls }, () => {
    const get = chance(0.6);
    const kind = `dropped ${get ? "GetBook" : "ListBooks"} (raw http2, ${how})`;
    const body = get
      ? toBinary(GetBookRequestSchema, create(GetBookRequestSchema, { id: pick(w.ids) }))
      : toBinary(ListBooksRequestSchema, create(ListBooksRequestSchema, { pageSize: 100 }));
    const stream = session.request({
      ":method": "POST",
      ":path": get ? GET_BOOK_PATH : LIST_BOOKS_PATH,
      "content-type": "application/grpc",
      te: "trailers",
    });
    const unfinished = chance(0.25);
    const frame = grpcFrame(body);
    if (unfinished) stream.write(frame.subarray(0, 3));
    else stream.end(frame);
    const done = new Promise<string>((resolve) => {
      let status: string | undefined;
      stream.on("trailers", (trailers) => {
        status = String(trailers["grpc-status"] ?? "?");
      });
      stream.on("response", (headers) => {
        // A trailers-only answer carries grpc-status in the headers.
        if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
      });
      stream.on("error", () => {});
      stream.resume();
      stream.on("close", () => resolve(status ?? "cut off"));
    });
    return { kind: unfinished ? `${kind} body unfinished` : kind, done, stream };
  });
  await tinyDelay();
  if (destroySession) {
    session.destroy();
  } else {
    for (const { stream } of streams) stream.close(http2.constants.NGHTTP2_CANCEL);
    session.close();
  }
  for (const { kind, done } of streams) {
    w.tally.calls++;
    const status = await done;
    if (status === "cut off") w.tally.add(kind, "cut off (by us)");
    else if (status === "0") w.tally.add(kind, "OK (answered before the drop)");
    else w.tally.bad(kind, `grpc-status ${status}`, "a dropped call got an error status");
  }
  if (!session.destroyed) session.destroy();
}

async function lane(w: World, total: number) {
  while (w.tally.calls < total) {
    const r = Math.random();
    try {
      if (r < 0.75) await normalCall(w);
      else if (r < 0.95) await cancelledCall(w);
      else await droppedConnection(w);
    } catch (err) {
      w.tally.calls++;
      w.tally.bad("driver", "exception", String(err));
    }
  }
}

interface Sample {
  atMs: number;
  calls: number;
  rssMb: number;
  fds: number;
}

async function healthy(server: PinnedServer, id: string) {
  const health = grpcClient(server.url, Health);
  const books = grpcClient(server.url, BookService);
  try {
    const res = await health.client.check({ service: "" }, { timeoutMs: 5000 });
    const book = await books.client.getBook({ id }, { timeoutMs: 5000 });
    return {
      health: HealthCheckResponse_ServingStatus[res.status] ?? String(res.status),
      getBook: book.id === id && toBinary(BookSchema, book).length > 0 ? "OK" : "wrong book",
    };
  } catch (err) {
    return { health: `failed: ${String(err)}`, getBook: "not tried" };
  } finally {
    health.close();
    books.close();
  }
}

/** Runs `taskset` on this process and all its threads, so the driver stays off the server's core. */
function pinSelf(core: number): string {
  const res = Bun.spawnSync(["taskset", "-a", "-cp", String(core), String(process.pid)]);
  return res.exitCode === 0 ? `core ${core}` : "unpinned (taskset failed)";
}

async function run(options: Options, cleanup: Cleanup): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "petbooks-grpc-endurance-"));
  cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
  // The driver must survive whatever its own dropped sessions raise; count it instead.
  let driverUncaught = 0;
  process.on("uncaughtException", (err) => {
    driverUncaught++;
    if (driverUncaught <= 3) console.error("driver uncaught exception:", err);
  });
  progress("building petbooks (bun build --compile --minify --sourcemap)");
  const petbooks = await buildPetbooks(dir);
  const url = await recreateDatabase(DATABASE);
  cleanup.defer(() => dropDatabase(DATABASE));
  await migrate(petbooks, url);
  await seed(url, options.books);
  const ids = await withSql(url, async (sql) =>
    (await sql<{ id: string }[]>`select id from books`).map((r) => r.id),
  );
  const [port] = (await freePorts(1)) as [number];
  const server = await startPinnedServer({
    name: "petbooks grpc",
    cmd: [petbooks, "grpc"],
    env: childEnv({
      DATABASE_URL: url,
      DATABASE_POOL_SIZE: String(options.pool),
      HOST: "127.0.0.1",
      GRPC_PORT: String(port),
      LOG_LEVEL: "warn",
    }),
    port,
    core: SERVER_CORE,
    logFile: join(dir, "petbooks.log"),
    ready: async (base) =>
      (await healthy({ url: base } as PinnedServer, ids[0] ?? "")).health === "SERVING",
  });
  cleanup.defer(server.stop);
  const pinned = pinSelf(LOAD_CORE);

  const address = `127.0.0.1:${port}`;
  const grpcJs = Array.from({ length: GRPC_JS_CLIENTS }, () => newGrpcJsClient(address));
  const connect = Array.from({ length: CONNECT_CLIENTS }, () =>
    grpcClient(server.url, BookService),
  );
  const health = grpcClient(server.url, Health);
  cleanup.defer(() => {
    for (const c of grpcJs) c.close();
    for (const c of connect) c.close();
    health.close();
  });
  const tally = new Tally();
  const w: World = { ids, url: server.url, address, tally, grpcJs, connect, health };

  const samples: Sample[] = [];
  const started = performance.now();
  const baseline = { rssMb: rssMb(server.pid) ?? 0, fds: openFds(server.pid) ?? 0 };
  const sample = () => {
    const rss = rssMb(server.pid);
    const fds = openFds(server.pid);
    if (rss !== undefined && fds !== undefined) {
      samples.push({ atMs: performance.now() - started, calls: tally.calls, rssMb: rss, fds });
    }
  };
  sample();
  const sampler = setInterval(sample, SAMPLE_EVERY_MS);
  let lastProgress = { at: started, calls: 0 };
  const reporter = setInterval(() => {
    const now = performance.now();
    const rate = ((tally.calls - lastProgress.calls) * 1000) / (now - lastProgress.at);
    lastProgress = { at: now, calls: tally.calls };
    const last = samples.at(-1);
    progress(
      `${tally.calls} / ${options.calls} calls, ${rate.toFixed(0)} calls/s, server RSS ` +
        `${last?.rssMb.toFixed(1) ?? "?"} MB, fds ${last?.fds ?? "?"}, unexpected ` +
        `${tally.unexpectedTotal}, server ${server.exitReason() ?? "running"}`,
    );
  }, PROGRESS_EVERY_MS);
  progress(
    `driving ${options.calls} calls, ${options.lanes} lanes, ${GRPC_JS_CLIENTS} grpc-js + ` +
      `${CONNECT_CLIENTS} Connect clients + raw http2 sessions; driver on ${pinned}`,
  );
  try {
    await Promise.all(Array.from({ length: options.lanes }, () => lane(w, options.calls)));
  } finally {
    clearInterval(sampler);
    clearInterval(reporter);
  }
  const seconds = (performance.now() - started) / 1000;
  sample();
  const endRun = samples.at(-1);
  // Let the connections of the run close, then look again.
  for (const c of grpcJs) c.close();
  for (const c of connect) c.close();
  await Bun.sleep(3000);
  const exit = server.exitReason();
  const check = exit
    ? { health: "not tried", getBook: "not tried" }
    : await healthy(server, ids[0] ?? "");
  const idle = { rssMb: rssMb(server.pid), fds: openFds(server.pid) };

  const warmCalls = options.calls * WARMUP_SHARE;
  const afterWarmup = samples.find((s) => s.calls >= warmCalls) ?? samples[0];
  const measured = samples.filter((s) => s.calls >= warmCalls);
  const peak = Math.max(...samples.map((s) => s.rssMb));
  // Least-squares slope of RSS over calls after warm-up, in MB per 100,000 calls.
  const slope = (() => {
    if (measured.length < 3) return Number.NaN;
    const mx = measured.reduce((a, s) => a + s.calls, 0) / measured.length;
    const my = measured.reduce((a, s) => a + s.rssMb, 0) / measured.length;
    let num = 0;
    let den = 0;
    for (const s of measured) {
      num += (s.calls - mx) * (s.rssMb - my);
      den += (s.calls - mx) ** 2;
    }
    return (num / den) * 100_000;
  })();
  const thirds = (() => {
    const n = measured.length;
    const avg = (xs: Sample[]) => xs.reduce((a, s) => a + s.rssMb, 0) / Math.max(1, xs.length);
    return {
      first: avg(measured.slice(0, Math.ceil(n / 3))),
      last: avg(measured.slice(n - Math.ceil(n / 3))),
    };
  })();
  const logLines = readFileSync(server.logFile, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "");
  const byMsg = new Map<string, number>();
  for (const line of logLines) {
    let key = line.slice(0, 80);
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      key = `${entry.level}: ${entry.msg}`;
    } catch {
      // Not a JSON line (a crash trace would be one).
    }
    byMsg.set(key, (byMsg.get(key) ?? 0) + 1);
  }

  const rssEnd = endRun?.rssMb ?? Number.NaN;
  const rssWarm = afterWarmup?.rssMb ?? Number.NaN;
  const alive = exit === undefined;
  const serving = check.health === "SERVING" && check.getBook === "OK";
  const noLeak = rssEnd <= rssWarm * MAX_RSS_GROWTH;
  const noUnexpected = tally.unexpectedTotal === 0;

  console.log("\n== petbooks gRPC endurance: cancelled and dropped calls ==");
  console.log(`machine: ${machineFacts()}`);
  console.log(
    `server: petbooks grpc on core ${SERVER_CORE}, LOG_LEVEL=warn, pool ${options.pool}, ` +
      `${options.books} books; driver on ${pinned}, ${options.lanes} lanes`,
  );
  console.log(
    `calls: ${tally.calls} in ${seconds.toFixed(1)} s (${(tally.calls / seconds).toFixed(0)} calls/s)`,
  );
  const rows = [...tally.counts.entries()].sort().map(([k, v]) => [k, String(v)]);
  console.log(`\noutcomes:\n${table(["kind: outcome", "calls"], rows)}`);
  if (tally.unexpected.size > 0) {
    const bad = [...tally.unexpected.entries()].map(([k, v]) => [
      k,
      String(v),
      tally.examples.get(k) ?? "",
    ]);
    console.log(`\nUNEXPECTED outcomes:\n${table(["kind: outcome", "calls", "example"], bad)}`);
  } else {
    console.log("unexpected outcomes: none");
  }
  console.log(`driver uncaught exceptions: ${driverUncaught}`);
  const every = Math.max(1, Math.floor(samples.length / 12));
  const shown = samples.filter((_, i) => i % every === 0 || i === samples.length - 1);
  console.log(
    `\nserver RSS and open fds (sampled every ${SAMPLE_EVERY_MS / 1000} s; ${samples.length} samples, every ${every}. shown):`,
  );
  console.log(
    table(
      ["t s", "calls", "RSS MB", "fds"],
      shown.map((s) => [
        (s.atMs / 1000).toFixed(0),
        String(s.calls),
        s.rssMb.toFixed(1),
        String(s.fds),
      ]),
    ),
  );
  console.log(
    `RSS: before load ${baseline.rssMb.toFixed(1)} MB; after warm-up (${afterWarmup?.calls ?? 0} calls) ` +
      `${rssWarm.toFixed(1)} MB; at the end ${rssEnd.toFixed(1)} MB (x${(rssEnd / rssWarm).toFixed(2)}); ` +
      `peak ${peak.toFixed(1)} MB; 3 s after the clients left ${idle.rssMb?.toFixed(1) ?? "?"} MB`,
  );
  console.log(
    `RSS trend after warm-up: ${slope.toFixed(2)} MB per 100k calls; mean of first third ` +
      `${thirds.first.toFixed(1)} MB, of last third ${thirds.last.toFixed(1)} MB`,
  );
  console.log(
    `open fds: before load ${baseline.fds}, at the end of the load ${endRun?.fds ?? "?"}, ` +
      `3 s after the clients left ${idle.fds ?? "?"}`,
  );
  console.log(
    `server log lines at warn and above: ${logLines.length}` +
      (byMsg.size ? ` (${[...byMsg.entries()].map(([k, v]) => `${k} x${v}`).join("; ")})` : ""),
  );
  console.log(`\nserver alive at the end: ${alive ? "yes" : `NO (${exit})`}`);
  console.log(`health check: ${check.health}; GetBook: ${check.getBook}`);
  console.log(
    `RSS did not keep growing (end <= ${MAX_RSS_GROWTH} x after warm-up): ${noLeak ? "yes" : "NO"}`,
  );
  console.log(`no unexpected errors: ${noUnexpected ? "yes" : "NO"}`);
  const pass = alive && serving && noLeak && noUnexpected && driverUncaught === 0;
  console.log(`verdict: ${pass ? "PASS" : "FAIL"}`);
  return pass ? 0 : 1;
}

await runBench({ usage: USAGE, parseOptions, run });
