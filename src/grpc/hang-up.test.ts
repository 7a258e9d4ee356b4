/**
 * Clients that go away in the middle of a call, over real connections: a call whose client reset
 * its stream (RST_STREAM CANCEL) or closed its connection while the server still read its request,
 * or while a stream was being served, is CANCELED in its log line, in grpc_server_handled_total and
 * in its span; never INVALID_ARGUMENT (what a malformed request is) nor OK. Requests that are
 * really malformed stay INVALID_ARGUMENT.
 *
 * The client is node:http2's. Its `stream.close(NGHTTP2_CANCEL)` is no reset mid-request: like
 * Node's, it first ends the request (an empty DATA frame with END_STREAM), then resets, so the
 * server reads a request that is complete, if cut short, and may answer it before the reset
 * arrives. Aborting the signal the request was made with sends RST_STREAM CANCEL alone.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http2 from "node:http2";
import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace";
import type { Book } from "../books/books.model.ts";
import { createLiveEvents, type LiveEvents } from "../events/live-events.ts";
import { ServerReflectionRequestSchema } from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { GetBookRequestSchema } from "../gen/petbooks/v1/books_pb.ts";
import { silentLogger } from "../logger.ts";
import { createMetrics } from "../observability/metrics.ts";
import { type Tracing, tracingFromEnv } from "../observability/tracing.ts";
import { startTestGrpcServer, type TestGrpcServer } from "../testing/grpc-server.ts";
import { sumOf } from "../testing/metrics-text.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { until } from "../testing/until.ts";

/** A bound on a hang, not a speed assertion. */
const WAIT_MS = 30_000;
const TEST_MS = 2 * WAIT_MS;

const BOOK: Book = {
  id: "0199a7c6-0000-7000-8000-000000000001",
  title: "Dune",
  author: "Frank Herbert",
  published_on: "1965-08-01",
  created_at: "2026-01-02T03:04:05Z",
  updated_at: "2026-01-02T03:04:05Z",
};

const metrics = createMetrics({ processMetrics: false });
const exporter = new InMemorySpanExporter();
const tracing = tracingFromEnv({}, { serviceName: "petbooks-test", exporter }) as Tracing;
let live: LiveEvents;
let server: TestGrpcServer;

beforeAll(async () => {
  live = createLiveEvents({ logger: silentLogger });
  server = await startTestGrpcServer({
    metrics,
    tracing,
    books: { get: async () => BOOK },
    watch: {
      live,
      replay: {
        findResumePoint: async () => undefined,
        eventsAfter: async () => [],
        oldestRetainedAt: async () => undefined,
      },
      retentionMs: 86_400_000,
    },
  });
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await server?.close(1_000);
  await tracing.shutdown();
}, TEARDOWN_TIMEOUT_MS);

const REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const GET_BOOK = "/petbooks.v1.BookService/GetBook";
const HEALTH_WATCH = "/grpc.health.v1.Health/Watch";
const WATCH_BOOKS = "/petbooks.v1.BookService/WatchBooks";

type Protocol = "grpc" | "grpc-web" | "connect";
const PROTOCOLS: Protocol[] = ["grpc", "grpc-web", "connect"];

/** The content type of each protocol, for a streaming method or a unary one. */
function contentType(protocol: Protocol, streaming: boolean): string {
  if (protocol === "grpc") return "application/grpc";
  if (protocol === "grpc-web") return "application/grpc-web+proto";
  return streaming ? "application/connect+proto" : "application/proto";
}

function envelope(message: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([head, message]);
}

/** The first 3 bytes of a message announced as 100 bytes long. */
const partEnvelope = () => Buffer.concat([Buffer.of(0, 0, 0, 0, 100), Buffer.of(1, 2, 3)]);

const listServices = envelope(
  toBinary(
    ServerReflectionRequestSchema,
    create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }),
  ),
);
const getBook = toBinary(GetBookRequestSchema, create(GetBookRequestSchema, { id: BOOK.id }));

let calls = 0;

/**
 * A call over its own HTTP/2 connection, with a fresh request id; `hangUp` resets its stream
 * (RST_STREAM CANCEL) or closes the connection.
 */
function open(path: string, type: string, headers: Record<string, string> = {}) {
  calls += 1;
  const requestId = `hang-up-${calls}`;
  const session = http2.connect(server.url);
  session.on("error", () => {});
  const cancel = new AbortController();
  const stream = session.request(
    {
      ...headers,
      ":method": "POST",
      ":path": path,
      "content-type": type,
      te: "trailers",
      "x-request-id": requestId,
    },
    { signal: cancel.signal },
  );
  stream.on("error", () => {});
  const firstData = new Promise<void>((resolve) => stream.once("data", () => resolve()));
  stream.on("data", () => {});
  return {
    requestId,
    stream,
    /** Resolves once the server has answered something. */
    firstData,
    write: (bytes: Uint8Array) =>
      new Promise<void>((resolve, reject) =>
        stream.write(bytes, (err) => (err ? reject(err) : resolve())),
      ),
    /**
     * Resolves once the server has read every frame sent before (it acknowledges a PING in
     * order), so what was written reached the call before the client goes.
     */
    synced: () =>
      new Promise<void>((resolve, reject) =>
        session.ping((err) => (err ? reject(err) : resolve())),
      ),
    hangUp(how: HangUp) {
      if (how === "RST_STREAM CANCEL") cancel.abort();
      else session.destroy();
    },
    close: () => session.destroy(),
  };
}

type HangUp = "RST_STREAM CANCEL" | "connection closed";
const HANG_UPS: HangUp[] = ["RST_STREAM CANCEL", "connection closed"];

/** The call's `rpc` log line, once it is written. */
function rpcLine(requestId: string) {
  return until(
    `the rpc line of ${requestId}`,
    () => server.logs.find((l) => l.msg === "rpc" && l.request_id === requestId),
    { timeoutMs: WAIT_MS },
  );
}

/** grpc_server_handled_total of `method` (the name, e.g. "Watch") by every code, right now. */
async function handled(method: string): Promise<Record<string, number>> {
  const text = await metrics.registry.metrics();
  const codes = new Set(
    [...text.matchAll(/^grpc_server_handled_total\{[^}]*grpc_code="(\w+)"/gm)].map((m) => m[1]),
  );
  const counts: Record<string, number> = {};
  for (const code of codes) {
    if (code === undefined) continue;
    counts[code] = sumOf(text, "grpc_server_handled_total", {
      grpc_method: method,
      grpc_code: code,
    });
  }
  return counts;
}

/** Waits until `method` has been counted once more than `before` (by any code), and says how. */
async function countedOnce(method: string, before: Record<string, number>) {
  const total = (counts: Record<string, number>) =>
    Object.values(counts).reduce((sum, n) => sum + n, 0);
  const after = await until(
    `${method} counted`,
    async () => {
      const now = await handled(method);
      return total(now) > total(before) ? now : undefined;
    },
    { timeoutMs: WAIT_MS },
  );
  return Object.fromEntries(
    Object.entries(after)
      .map(([code, n]) => [code, n - (before[code] ?? 0)] as const)
      .filter(([, n]) => n !== 0),
  );
}

/** The status in the one span of `name` finished since the exporter was reset. */
async function spanStatus(name: string) {
  const span = await until(
    `the span ${name}`,
    () => exporter.getFinishedSpans().find((s) => s.name === name),
    { timeoutMs: WAIT_MS },
  );
  return span.attributes["rpc.grpc.status"];
}

/** What a call that reached the interceptors left: its log line's code, its count, its span. */
interface Recorded {
  log: unknown;
  counted: Record<string, number>;
  span: unknown;
}

/**
 * Starts recording the next call to `method` of `service`; `of(requestId)` waits until all three
 * are written. Every test waits for them, so none sees another's.
 */
async function recording(service: string, method: string) {
  exporter.reset();
  const before = await handled(method);
  return {
    async of(requestId: string): Promise<Recorded> {
      const log = (await rpcLine(requestId)).code;
      const counted = await countedOnce(method, before);
      const span = await spanStatus(`${service}/${method}`);
      return { log, counted, span };
    },
  };
}

const CANCELED: Recorded = { log: "CANCELED", counted: { Canceled: 1 }, span: "Canceled" };
const INVALID: Recorded = {
  log: "INVALID_ARGUMENT",
  counted: { InvalidArgument: 1 },
  span: "InvalidArgument",
};

const REFLECTION_SERVICE = "grpc.reflection.v1.ServerReflection";

describe("a client that goes away while the server reads its request stream: CANCELED", () => {
  const matrix = HANG_UPS.flatMap((how) => PROTOCOLS.map((protocol) => [how, protocol] as const));

  test.each(matrix)(
    "bidi (reflection), %s in the middle of a message, over %s",
    async (how, protocol) => {
      const recorded = await recording(REFLECTION_SERVICE, "ServerReflectionInfo");
      const call = open(REFLECTION, contentType(protocol, true));
      try {
        // One request answered: the call is running and reads the next one.
        await call.write(listServices);
        await call.firstData;
        await call.write(partEnvelope());
        await call.synced();
        call.hangUp(how);
        expect(await recorded.of(call.requestId)).toEqual(CANCELED);
      } finally {
        call.close();
      }
    },
    TEST_MS,
  );

  test.each(HANG_UPS)(
    "bidi (reflection), %s between two messages",
    async (how) => {
      const recorded = await recording(REFLECTION_SERVICE, "ServerReflectionInfo");
      const call = open(REFLECTION, contentType("grpc", true));
      try {
        await call.write(listServices);
        await call.firstData;
        call.hangUp(how);
        expect(await recorded.of(call.requestId)).toEqual(CANCELED);
      } finally {
        call.close();
      }
    },
    TEST_MS,
  );

  // Connect reads a unary request before any interceptor runs: decode-errors.ts logs and counts
  // these calls (they are not traced, as no other call refused before the interceptors is).
  test.each(matrix)(
    "unary (GetBook), %s in the middle of its message, over %s",
    async (how, protocol) => {
      const before = await handled("GetBook");
      const call = open(GET_BOOK, contentType(protocol, false), server.bearer);
      try {
        await call.write(protocol === "connect" ? getBook.subarray(0, 3) : partEnvelope());
        await call.synced();
        call.hangUp(how);
        expect(await rpcLine(call.requestId)).toMatchObject({
          code: "CANCELED",
          // A closed connection ends with a TCP reset instead of a FIN when the server's last
          // frames (a WINDOW_UPDATE, say) are still unread on the client: either is a hang-up.
          reason:
            how === "connection closed"
              ? expect.stringMatching(/ERR_STREAM_PREMATURE_CLOSE|ECONNRESET/)
              : expect.stringContaining("ERR_STREAM_PREMATURE_CLOSE"),
        });
        expect(await countedOnce("GetBook", before)).toEqual({ Canceled: 1 });
      } finally {
        call.close();
      }
    },
    TEST_MS,
  );

  test(
    "over HTTP/1.1: a connection closed in the middle of a unary request (Connect)",
    async () => {
      calls += 1;
      const requestId = `hang-up-${calls}`;
      const socket = net.connect(server.port, "127.0.0.1");
      socket.on("error", () => {});
      try {
        await new Promise<void>((resolve) => socket.once("connect", resolve));
        const head =
          `POST ${GET_BOOK} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/proto\r\n` +
          `content-length: 100\r\nx-request-id: ${requestId}\r\n` +
          `authorization: ${server.bearer.authorization}\r\n\r\n`;
        await new Promise<void>((resolve, reject) =>
          socket.write(Buffer.concat([Buffer.from(head), getBook.subarray(0, 3)]), (err) =>
            err ? reject(err) : resolve(),
          ),
        );
        // Sent: TCP delivers it before the connection's end.
        socket.destroy();
        expect(await rpcLine(requestId)).toMatchObject({
          code: "CANCELED",
          reason: expect.stringContaining("ECONNRESET"),
        });
      } finally {
        socket.destroy();
      }
    },
    TEST_MS,
  );
});

describe("a client that goes away while a stream is served: CANCELED", () => {
  test.each(HANG_UPS)(
    "health Watch, %s",
    async (how) => {
      const recorded = await recording("grpc.health.v1.Health", "Watch");
      const call = open(HEALTH_WATCH, contentType("grpc", true));
      try {
        call.stream.end(envelope(new Uint8Array()));
        await call.firstData;
        call.hangUp(how);
        expect(await recorded.of(call.requestId)).toEqual(CANCELED);
      } finally {
        call.close();
      }
    },
    TEST_MS,
  );

  test.each(HANG_UPS)(
    "WatchBooks, %s",
    async (how) => {
      const recorded = await recording("petbooks.v1.BookService", "WatchBooks");
      const listeners = live.listeners;
      const call = open(WATCH_BOOKS, contentType("grpc", true), server.bearer);
      try {
        call.stream.end(envelope(new Uint8Array()));
        await until("the stream listens", () => live.listeners > listeners, { timeoutMs: WAIT_MS });
        call.hangUp(how);
        expect(await recorded.of(call.requestId)).toEqual(CANCELED);
      } finally {
        call.close();
      }
    },
    TEST_MS,
  );
});

describe("a request that is malformed, however the client ends it: INVALID_ARGUMENT", () => {
  test.each([
    ["a message that is no protobuf", envelope(Uint8Array.of(0xff, 0xff, 0xff, 0xff))],
    // What node:http2's stream.close(NGHTTP2_CANCEL) sends before its reset (see above).
    ["a message cut short by the end of the request", partEnvelope()],
  ])(
    "bidi (reflection): %s",
    async (_, bytes) => {
      const recorded = await recording(REFLECTION_SERVICE, "ServerReflectionInfo");
      const call = open(REFLECTION, contentType("grpc", true));
      try {
        call.stream.end(bytes);
        expect(await recorded.of(call.requestId)).toEqual(INVALID);
      } finally {
        call.close();
      }
    },
    TEST_MS,
  );

  test(
    "unary (GetBook): a message cut short by the end of the request",
    async () => {
      const before = await handled("GetBook");
      const call = open(GET_BOOK, contentType("grpc", false), server.bearer);
      try {
        call.stream.end(partEnvelope());
        expect((await rpcLine(call.requestId)).code).toBe("INVALID_ARGUMENT");
        expect(await countedOnce("GetBook", before)).toEqual({ InvalidArgument: 1 });
      } finally {
        call.close();
      }
    },
    TEST_MS,
  );
});
