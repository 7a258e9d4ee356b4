import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import {
  AppError,
  ConflictError,
  NotFoundError,
  TooManyRequestsError,
  UnauthorizedError,
  ValidationError,
} from "../errors.ts";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { BookService } from "../gen/petbooks/v1/books_pb.ts";
import { failureOf, startTestGrpcServer, type TestGrpcServer } from "../testing/grpc-server.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { until } from "../testing/until.ts";
import { codeName, DATABASE_UNAVAILABLE } from "./interceptors.ts";

/** GetBook throws whatever the test put under its id. */
const failures = new Map<string, unknown>();
let server: TestGrpcServer;

const id = (n: number) => `0199a7c6-0000-7000-8000-${String(n).padStart(12, "0")}`;

beforeAll(async () => {
  server = await startTestGrpcServer({
    books: {
      get: async (bookId) => {
        throw failures.get(bookId) ?? new Error("no failure set");
      },
    },
  });
}, SETUP_TIMEOUT_MS);
afterAll(() => server.close(1000), TEARDOWN_TIMEOUT_MS);

describe("application errors become Connect codes, with their message", () => {
  test.each([
    ["not_found", new NotFoundError("Book with the matching ID was not found."), Code.NotFound],
    [
      "validation",
      new ValidationError("Invalid book.", [{ path: "/title", message: "too long" }]),
      Code.InvalidArgument,
    ],
    ["bad_request", new AppError("bad_request", "Cannot parse."), Code.InvalidArgument],
    ["unauthorized", new UnauthorizedError("A token is required."), Code.Unauthenticated],
    ["conflict", new ConflictError("Taken."), Code.AlreadyExists],
    ["payload_too_large", new AppError("payload_too_large", "Too big."), Code.ResourceExhausted],
    [
      "unavailable",
      new AppError("unavailable", "The database is not reachable."),
      Code.Unavailable,
    ],
    [
      "too_many_requests",
      new TooManyRequestsError("Too many attempts.", 60),
      Code.ResourceExhausted,
    ],
  ])("%s", async (_, error, code) => {
    const bookId = id(failures.size + 1);
    failures.set(bookId, error);
    const failure = await failureOf(server.client(BookService).getBook({ id: bookId }));
    expect(failure.code).toBe(code);
    expect(failure.rawMessage).toStartWith(error.message);
  });

  test("field errors are spelled out", async () => {
    failures.set(
      id(100),
      new ValidationError("Invalid book.", [{ path: "/title", message: "too long" }]),
    );
    const failure = await failureOf(server.client(BookService).getBook({ id: id(100) }));
    expect(failure.rawMessage).toBe("Invalid book. (/title: too long)");
  });
});

describe("a database that cannot be reached is UNAVAILABLE, in our own words", () => {
  test.each([
    [
      "a refused connection",
      { code: "ECONNREFUSED", message: "connect ECONNREFUSED 10.9.8.7:5432" },
    ],
    ["a connection that ended", { code: "CONNECTION_ENDED", message: "write CONNECTION_ENDED" }],
    ["a statement timeout", { code: "57014", message: "canceling statement due to timeout" }],
  ])("%s", async (_, { code, message }) => {
    const bookId = id(500 + failures.size);
    // As Drizzle throws it: its own error, with the driver's as the cause.
    failures.set(
      bookId,
      new Error('Failed query: select "title" from "books"', {
        cause: Object.assign(new Error(message), { code }),
      }),
    );
    const failure = await failureOf(
      server.client(BookService).getBook({ id: bookId }, { headers: { "x-request-id": bookId } }),
    );
    expect(failure.code).toBe(Code.Unavailable);
    expect(failure.rawMessage).toBe(DATABASE_UNAVAILABLE);
    expect(failure.metadata.get("x-request-id")).toBe(bookId);
    expect(server.logs.find((l) => l.request_id === bookId && l.msg !== "rpc")).toMatchObject({
      level: "warn",
      msg: "database unavailable",
    });
  });
});

test("a database dropped under the server (FATAL 3D000 at reconnect) is UNAVAILABLE, logged as an error", async () => {
  const bookId = id(600);
  failures.set(
    bookId,
    new Error('Failed query: select "title" from "books"', {
      cause: Object.assign(new Error('database "petbooks" does not exist'), {
        code: "3D000",
        severity: "FATAL",
      }),
    }),
  );
  const failure = await failureOf(
    server.client(BookService).getBook({ id: bookId }, { headers: { "x-request-id": bookId } }),
  );
  expect(failure.code).toBe(Code.Unavailable);
  expect(failure.rawMessage).toBe(DATABASE_UNAVAILABLE);
  expect(server.logs.find((l) => l.request_id === bookId && l.msg !== "rpc")).toMatchObject({
    level: "error",
    msg: "database refused the connection",
    reason: "the database does not exist (3D000)",
  });
});

describe("anything else is an opaque INTERNAL error", () => {
  test.each([
    [
      "an Error carrying SQL",
      new Error('duplicate key value violates unique constraint "books_pkey"'),
    ],
    ["an internal AppError", new AppError("internal", "select secret from config")],
    ["a thrown string", "select 1"],
  ])("%s", async (_, thrown) => {
    const bookId = id(200 + failures.size);
    failures.set(bookId, thrown);
    const failure = await failureOf(server.client(BookService).getBook({ id: bookId }));
    expect(failure.code).toBe(Code.Internal);
    expect(failure.rawMessage).toMatch(/^Internal error; quote request id [0-9a-f-]{36}\.$/);
    expect(failure.rawMessage).not.toMatch(/select|duplicate|constraint/);
    const requestId = failure.rawMessage.match(/[0-9a-f-]{36}/)?.[0];
    expect(failure.metadata.get("x-request-id")).toBe(requestId as string);
    const logged = server.logs.find(
      (l) => l.msg === "unhandled error" && l.request_id === requestId,
    );
    expect(logged).toMatchObject({ level: "error", method: "/petbooks.v1.BookService/GetBook" });
  });
});

describe("one log line per call", () => {
  test("method, protocol, code and duration, with the caller's request id", async () => {
    failures.set(id(300), new NotFoundError("gone"));
    await failureOf(
      server
        .client(BookService)
        .getBook({ id: id(300) }, { headers: { "x-request-id": "req-300" } }),
    );
    const web = createClient(
      Health,
      createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" }),
    );
    const answer = await web.check({}, { headers: { "x-request-id": "req-301" } });
    expect(answer.status).toBeDefined();
    const lines = server.logs.filter(
      (l) => l.msg === "rpc" && String(l.request_id).startsWith("req-30"),
    );
    expect(lines).toEqual([
      expect.objectContaining({
        level: "info",
        module: "grpc",
        request_id: "req-300",
        method: "/petbooks.v1.BookService/GetBook",
        protocol: "grpc",
        code: "NOT_FOUND",
        duration_ms: expect.any(Number),
      }),
      expect.objectContaining({
        request_id: "req-301",
        method: "/grpc.health.v1.Health/Check",
        protocol: "grpc-web",
        code: "OK",
      }),
    ]);
  });

  test("an unusable request id is replaced", async () => {
    failures.set(id(400), new NotFoundError("gone"));
    const failure = await failureOf(
      server
        .client(BookService)
        .getBook({ id: id(400) }, { headers: { "x-request-id": "bad id\u0007" } }),
    );
    expect(failure.metadata.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("a streaming call is logged when it ends", async () => {
    const abort = new AbortController();
    const headers = { "x-request-id": "req-watch" };
    for await (const _ of server.client(Health).watch({}, { signal: abort.signal, headers })) break;
    abort.abort();
    // The line comes once the server has seen the cancel and the stream has unwound: waited for,
    // as a busy machine can take longer than any fixed pause.
    const line = await until(
      "the Watch call's log line",
      () => server.logs.find((l) => l.request_id === "req-watch"),
      { timeoutMs: 20_000 },
    );
    expect(line).toMatchObject({ method: "/grpc.health.v1.Health/Watch", code: "CANCELED" });
  }, 30_000);
});

test.each([
  [undefined, "OK"],
  [Code.NotFound, "NOT_FOUND"],
  [Code.InvalidArgument, "INVALID_ARGUMENT"],
  [Code.DeadlineExceeded, "DEADLINE_EXCEEDED"],
  [Code.Unauthenticated, "UNAUTHENTICATED"],
])("code %p is named %p", (code, name) => {
  expect(codeName(code)).toBe(name);
});
