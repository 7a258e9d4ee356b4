/**
 * Endurance of `petbooks grpc`: many calls from several concurrent clients, a share of them
 * cancelled mid-call or cut off by a client that drops its connection, while the server's RSS and
 * open file descriptors are sampled. At the end the server must still run, answer a health check
 * and a GetBook, and its RSS must not have kept growing.
 *
 *   bun bench/grpc-endurance.ts [--calls 500000] [--books 1000] [--lanes 48] [--pool 10]
 *
 * The mix (every call counts toward --calls), each BookService call with a bearer token:
 *   - normal, 75%: GetBook (a few for an id with no book, or not a UUID: NOT_FOUND and
 *     INVALID_ARGUMENT expected) and ListBooks (random page size, sometimes the next page), half
 *     by @grpc/grpc-js clients (each its own connection), half by Connect clients;
 *   - cancelled, 20%: grpc-js `call.cancel()` or an aborted signal (Connect) after a tiny random
 *     delay, and a few health Watch streams cancelled after their first message;
 *   - dropped, 5%: a raw node:http2 session starts 1-4 calls (some with the body unfinished), then
 *     is destroyed or resets its streams (RST_STREAM CANCEL).
 *
 * The server is built from the current sources, pinned to core 0, LOG_LEVEL=warn; this driver
 * pins itself to core 1. Creates and finally drops the database petbooks_bench_grpc_endurance.
 */
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.ts";
import {
  BookService,
  GetBookRequestSchema,
  ListBooksRequestSchema,
} from "../src/gen/petbooks/v1/books_pb.ts";
import { runBench } from "./lib/cleanup.ts";
import { openWorkspace, progress } from "./lib/context.ts";
import { seedBooks } from "./lib/database.ts";
import { grpcClient } from "./lib/grpc.ts";
import { grpcFrame } from "./lib/h2load.ts";
import { loadAverage, machineFacts } from "./lib/machine.ts";
import type { Options } from "./lib/options.ts";
import {
  freePorts,
  LOAD_CORE,
  openFds,
  ROOT,
  rssMb,
  runChecked,
  SERVER_CORE,
} from "./lib/processes.ts";
import { table } from "./lib/report.ts";
import { bearerToken, startGrpc } from "./lib/servers.ts";

const SAMPLE_EVERY_MS = 3_000;
const PROGRESS_EVERY_MS = 10_000;
/** RSS is compared from this share of the calls on (allocator, JIT and pools warmed up). */
const WARMUP_SHARE = 0.1;
const MAX_RSS_GROWTH = 1.25;
const CLIENTS = 4;

const OPTIONS = {
  calls: { int: 500_000, help: "calls in all, every kind counted" },
  books: { int: 1000, help: "books seeded" },
  lanes: { int: 48, help: "concurrent lanes of calls" },
  pool: { int: 10, help: "DATABASE_POOL_SIZE of the server" },
} as const;

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;
const chance = (p: number) => Math.random() < p;
const codeName = (code: number) => String(Code[code] ?? `code ${code}`);

/** A random tiny delay before cancelling: none, a macrotask, or 0-3 ms. */
function tinyDelay(): Promise<void> {
  const r = Math.random();
  if (r < 0.15) return Promise.resolve();
  if (r < 0.3) return new Promise((resolve) => setImmediate(resolve));
  return Bun.sleep(Math.random() * 3);
}

/** Outcomes by kind of call ("kind: outcome" → count), unexpected ones apart with an example. */
class Tally {
  readonly counts = new Map<string, number>();
  readonly unexpected = new Map<string, { count: number; example: string }>();
  calls = 0;

  add(kind: string, outcome: string) {
    const key = `${kind}: ${outcome}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  bad(kind: string, outcome: string, detail: string) {
    const key = `${kind}: ${outcome}`;
    const seen = this.unexpected.get(key) ?? { count: 0, example: detail.slice(0, 200) };
    this.unexpected.set(key, { ...seen, count: seen.count + 1 });
  }

  get unexpectedTotal() {
    return [...this.unexpected.values()].reduce((n, u) => n + u.count, 0);
  }
}

type GrpcJsUnary = (
  request: object,
  metadata: grpc.Metadata,
  callback: (error: grpc.ServiceError | null) => void,
) => grpc.ClientUnaryCall;

interface World {
  ids: string[];
  url: string;
  tally: Tally;
  metadata: grpc.Metadata;
  authorization: string;
  grpcJs: grpc.Client[];
  connect: ReturnType<typeof grpcClient<typeof BookService>>[];
  health: ReturnType<typeof grpcClient<typeof Health>>;
}

/** A grpc-js client from proto/ with a connection of its own (grpc-js shares one otherwise). */
function newGrpcJsClient(address: string): grpc.Client {
  const definition = protoLoader.loadSync("petbooks/v1/books.proto", {
    includeDirs: [join(ROOT, "proto")],
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

function grpcJsCall(w: World, method: "GetBook" | "ListBooks", body: object, cancel = false) {
  const client = pick(w.grpcJs);
  const unary = (client as unknown as Record<string, GrpcJsUnary>)[method]?.bind(client);
  if (!unary) throw new Error(`no ${method}`);
  return new Promise<grpc.ServiceError | null>((resolve) => {
    const call = unary(body, w.metadata, (error) => resolve(error));
    if (cancel) void tinyDelay().then(() => call.cancel());
  });
}

async function normalCall(w: World) {
  const r = Math.random();
  const get = r < 0.7;
  const request =
    r < 0.04 ? { id: crypto.randomUUID() } : r < 0.06 ? { id: "not-a-uuid" } : { id: pick(w.ids) };
  const expected = r < 0.04 ? Code.NotFound : r < 0.06 ? Code.InvalidArgument : 0;
  const pageSize = 1 + Math.floor(Math.random() * 100);
  const viaGrpcJs = chance(0.5);
  const kind = `normal ${get ? "GetBook" : "ListBooks"} (${viaGrpcJs ? "grpc-js" : "connect"})`;
  let code = 0;
  let detail = "";
  if (viaGrpcJs) {
    const err = await grpcJsCall(
      w,
      get ? "GetBook" : "ListBooks",
      get ? request : { page_size: pageSize },
    );
    code = err?.code ?? 0;
    detail = err?.message ?? "";
  } else {
    const { client } = pick(w.connect);
    try {
      if (get) await client.getBook(request);
      else {
        const page = await client.listBooks({ pageSize });
        // Sometimes the next page too (a second call), to use page tokens.
        if (page.nextPageToken !== "" && chance(0.3)) {
          await client.listBooks({ pageSize, pageToken: page.nextPageToken });
          w.tally.calls++;
          w.tally.add(kind, "OK (next page)");
        }
      }
    } catch (err) {
      ({ code, message: detail } = ConnectError.from(err));
    }
  }
  w.tally.calls++;
  const wanted = get ? expected : 0;
  if (code === wanted) w.tally.add(kind, code === 0 ? "OK" : `${codeName(code)} (expected)`);
  else w.tally.bad(kind, codeName(code), detail);
}

async function cancelledCall(w: World) {
  w.tally.calls++;
  const r = Math.random();
  if (r < 0.03) {
    const kind = "cancelled Health.Watch (connect)";
    const abort = new AbortController();
    try {
      for await (const res of w.health.client.watch({ service: "" }, { signal: abort.signal })) {
        if (res.status !== HealthCheckResponse_ServingStatus.SERVING)
          w.tally.bad(kind, "not SERVING", "");
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
  const method = get ? "GetBook" : "ListBooks";
  if (r < 0.5) {
    const kind = `cancelled ${method} (grpc-js)`;
    const err = await grpcJsCall(w, method, get ? { id: pick(w.ids) } : { page_size: 100 }, true);
    if (!err) w.tally.add(kind, "OK (answered before the cancel)");
    else if (err.code === grpc.status.CANCELLED) w.tally.add(kind, "CANCELLED (by us)");
    else w.tally.bad(kind, codeName(err.code), err.message);
    return;
  }
  const kind = `cancelled ${method} (connect)`;
  const abort = new AbortController();
  void tinyDelay().then(() => abort.abort());
  try {
    const { client } = pick(w.connect);
    if (get) await client.getBook({ id: pick(w.ids) }, { signal: abort.signal });
    else await client.listBooks({ pageSize: 100 }, { signal: abort.signal });
    w.tally.add(kind, "OK (answered before the cancel)");
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code === Code.Canceled) w.tally.add(kind, "CANCELLED (by us)");
    else w.tally.bad(kind, codeName(e.code), e.message);
  }
}

/** A raw HTTP/2 session starts 1-4 calls, waits a tiny random delay, then drops them. */
async function droppedConnection(w: World) {
  const session = http2.connect(w.url);
  session.on("error", () => {});
  const destroySession = chance(0.5);
  const how = destroySession ? "session destroyed" : "streams reset";
  const streams = Array.from({ length: 1 + Math.floor(Math.random() * 4) }, () => {
    const get = chance(0.6);
    const body = get
      ? toBinary(GetBookRequestSchema, create(GetBookRequestSchema, { id: pick(w.ids) }))
      : toBinary(ListBooksRequestSchema, create(ListBooksRequestSchema, { pageSize: 100 }));
    const stream = session.request({
      ":method": "POST",
      ":path": `/petbooks.v1.BookService/${get ? "GetBook" : "ListBooks"}`,
      "content-type": "application/grpc",
      te: "trailers",
      authorization: w.authorization,
    });
    const unfinished = chance(0.25);
    const frame = grpcFrame(body);
    if (unfinished) stream.write(frame.subarray(0, 3));
    else stream.end(frame);
    const done = new Promise<string>((resolve) => {
      let status: string | undefined;
      const take = (headers: http2.IncomingHttpHeaders) => {
        if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
      };
      stream.on("trailers", take);
      stream.on("response", take);
      stream.on("error", () => {});
      stream.resume();
      stream.on("close", () => resolve(status ?? "cut off"));
    });
    const kind = `dropped ${get ? "GetBook" : "ListBooks"} (raw http2, ${how})`;
    return { kind: unfinished ? `${kind} body unfinished` : kind, done, stream };
  });
  await tinyDelay();
  if (destroySession) session.destroy();
  else {
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

async function healthy(url: string, id: string, authorization: string) {
  const health = grpcClient(url, Health);
  const books = grpcClient(url, BookService, authorization);
  try {
    const res = await health.client.check({ service: "" }, { timeoutMs: 5000 });
    const book = await books.client.getBook({ id }, { timeoutMs: 5000 });
    return `${HealthCheckResponse_ServingStatus[res.status]}, GetBook ${book.id === id ? "OK" : "wrong book"}`;
  } catch (err) {
    return `failed: ${String(err)}`;
  } finally {
    health.close();
    books.close();
  }
}

/** Least-squares slope of RSS over calls, in MB per 100,000 calls. */
function slope(samples: { calls: number; rssMb: number }[]): number {
  const n = samples.length;
  const mx = samples.reduce((a, s) => a + s.calls, 0) / n;
  const my = samples.reduce((a, s) => a + s.rssMb, 0) / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.calls - mx) * (s.rssMb - my);
    den += (s.calls - mx) ** 2;
  }
  return (num / den) * 100_000;
}

/** Samples of the server's RSS and open fds as the calls go by. */
function sampler(pid: number, calls: () => number) {
  const samples: { atMs: number; calls: number; rssMb: number; fds: number }[] = [];
  const started = performance.now();
  const sample = () => {
    const [rss, fds] = [rssMb(pid), openFds(pid)];
    if (rss !== undefined && fds !== undefined) {
      samples.push({ atMs: performance.now() - started, calls: calls(), rssMb: rss, fds });
    }
  };
  return { samples, sample };
}
type Samples = ReturnType<typeof sampler>["samples"];

/** The server's warn and error lines, counted by level and message. */
function logSummary(file: string) {
  const log = readFileSync(file, "utf8").split("\n").filter(Boolean);
  const byMessage = new Map<string, number>();
  for (const line of log) {
    let entry: string;
    try {
      const { level, msg } = JSON.parse(line) as { level?: string; msg?: string };
      entry = `${level}: ${msg}`;
    } catch {
      entry = line.slice(0, 80);
    }
    byMessage.set(entry, (byMessage.get(entry) ?? 0) + 1);
  }
  const detail = byMessage.size
    ? ` (${[...byMessage].map(([k, v]) => `${k} x${v}`).join("; ")})`
    : "";
  return `server log lines at warn and above: ${log.length}${detail}`;
}

interface Outcome {
  options: Options<typeof OPTIONS>;
  tally: Tally;
  seconds: number;
  samples: Samples;
  idle: { rssMb?: number; fds?: number };
  exit: string | undefined;
  check: string;
  driverUncaught: number;
  log: string;
}

/** The report; true when the server survived, answers, did not keep growing and nothing was unexpected. */
function report(o: Outcome): boolean {
  const { options, tally, samples, idle } = o;
  const before = samples[0];
  const end = samples.at(-1);
  const measured = samples.filter((s) => s.calls >= options.calls * WARMUP_SHARE);
  const warm = measured[0] ?? samples[0];
  const noLeak = (end?.rssMb ?? Number.NaN) <= (warm?.rssMb ?? 0) * MAX_RSS_GROWTH;
  const every = Math.max(1, Math.floor(samples.length / 12));
  const shown = samples.filter((_, i) => i % every === 0 || i === samples.length - 1);
  const mb = (n: number | undefined) => n?.toFixed(1);
  const out = [
    "== petbooks gRPC endurance: cancelled and dropped calls",
    `machine: ${machineFacts()
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
    `server on core ${SERVER_CORE}, pool ${options.pool}, ${options.books} books; ${options.lanes} lanes`,
    `calls: ${tally.calls} in ${o.seconds.toFixed(1)} s (${(tally.calls / o.seconds).toFixed(0)} calls/s), load ${loadAverage()} at the end`,
    "",
    table(
      ["kind: outcome", "calls"],
      [...tally.counts].sort().map(([k, v]) => [k, String(v)]),
    ),
    tally.unexpected.size === 0
      ? "unexpected outcomes: none"
      : `UNEXPECTED outcomes:\n${table(
          ["kind: outcome", "calls", "example"],
          [...tally.unexpected].map(([k, u]) => [k, String(u.count), u.example]),
        )}`,
    `driver uncaught exceptions: ${o.driverUncaught}`,
    "",
    table(
      ["t s", "calls", "RSS MB", "fds"],
      shown.map((s) => [
        (s.atMs / 1000).toFixed(0),
        String(s.calls),
        mb(s.rssMb) ?? "",
        String(s.fds),
      ]),
    ),
    `RSS: before ${mb(before?.rssMb)} MB, after warm-up ${mb(warm?.rssMb)} MB, at the end ${mb(end?.rssMb)} MB, ` +
      `3 s after the clients left ${mb(idle.rssMb)} MB; trend after warm-up ${measured.length >= 3 ? slope(measured).toFixed(2) : "?"} MB per 100k calls`,
    `open fds: before ${before?.fds}, at the end ${end?.fds}, 3 s after ${idle.fds}`,
    o.log,
    "",
    `server alive at the end: ${o.exit ? `NO (${o.exit})` : "yes"}; health and GetBook: ${o.check}`,
    `RSS did not keep growing (end <= ${MAX_RSS_GROWTH} x after warm-up): ${noLeak ? "yes" : "NO"}`,
  ];
  const pass =
    !o.exit &&
    o.check === "SERVING, GetBook OK" &&
    noLeak &&
    tally.unexpectedTotal === 0 &&
    o.driverUncaught === 0;
  console.log([...out, `verdict: ${pass ? "PASS" : "FAIL"}`].join("\n"));
  return pass;
}

await runBench({
  script: "bench/grpc-endurance.ts",
  options: OPTIONS,
  run: async (options, cleanup) => {
    // The driver must survive whatever its own dropped sessions raise; count it instead.
    let driverUncaught = 0;
    process.on("uncaughtException", (err) => {
      if (++driverUncaught <= 3) console.error("driver uncaught exception:", err);
    });
    const ws = await openWorkspace(cleanup, {
      name: "grpc-endurance",
      database: "petbooks_bench_grpc_endurance",
      pool: options.pool,
    });
    await seedBooks(ws.sql, options.books);
    const ids = (await ws.sql<{ id: string }[]>`select id from books`).map((r) => r.id);
    const [port] = (await freePorts(1)) as [number];
    const authorization = await bearerToken(ws);
    const logFile = join(ws.dir, "petbooks.log");
    const server = await startGrpc(
      ws,
      "petbooks grpc",
      [ws.binary, "grpc"],
      port,
      { id: ids[0] ?? "", authorization },
      {
        logFile,
        ready: async (base) =>
          (await healthy(base, ids[0] ?? "", authorization)).startsWith("SERVING"),
      },
    );
    await runChecked(["taskset", "-a", "-cp", String(LOAD_CORE), String(process.pid)]);

    const metadata = new grpc.Metadata();
    metadata.set("authorization", authorization);
    const w: World = {
      ids,
      url: server.baseUrl,
      tally: new Tally(),
      metadata,
      authorization,
      grpcJs: Array.from({ length: CLIENTS }, () => newGrpcJsClient(`127.0.0.1:${port}`)),
      connect: Array.from({ length: CLIENTS }, () =>
        grpcClient(server.baseUrl, BookService, authorization),
      ),
      health: grpcClient(server.baseUrl, Health),
    };
    const closeClients = () => {
      for (const c of w.grpcJs) c.close();
      for (const c of w.connect) c.close();
      w.health.close();
    };
    cleanup.defer(closeClients);

    const { samples, sample } = sampler(server.pid, () => w.tally.calls);
    sample();
    const timers = [
      setInterval(sample, SAMPLE_EVERY_MS),
      setInterval(() => {
        const last = samples.at(-1);
        progress(
          `${w.tally.calls} / ${options.calls} calls, RSS ${last?.rssMb.toFixed(1)} MB, fds ` +
            `${last?.fds}, unexpected ${w.tally.unexpectedTotal}, server ${server.exitReason() ?? "running"}`,
        );
      }, PROGRESS_EVERY_MS),
    ];
    progress(
      `driving ${options.calls} calls over ${options.lanes} lanes (driver on core ${LOAD_CORE})`,
    );
    const started = performance.now();
    try {
      await Promise.all(Array.from({ length: options.lanes }, () => lane(w, options.calls)));
    } finally {
      for (const timer of timers) clearInterval(timer);
    }
    const seconds = (performance.now() - started) / 1000;
    sample();
    closeClients();
    await Bun.sleep(3000);
    const exit = server.exitReason();
    const check = exit ? "not tried" : await healthy(server.baseUrl, ids[0] ?? "", authorization);
    const idle = { rssMb: rssMb(server.pid), fds: openFds(server.pid) };
    const outcome = {
      options,
      tally: w.tally,
      seconds,
      samples,
      idle,
      exit,
      check,
      driverUncaught,
    };
    return report({ ...outcome, log: logSummary(logFile) }) ? 0 : 1;
  },
});
