import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import type { Book } from "../books/books.model.ts";
import { NotFoundError } from "../errors.ts";
import { startTestGrpcServer, type TestGrpcServer } from "../testing/grpc-server.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import {
  CONNECT_HTTP_STATUS,
  callRaw,
  caseContext,
  GRPC_ERROR_CASES,
  INTERNALS,
} from "./error-cases.ts";
import {
  COMPRESSED_WITHOUT_ENCODING,
  decodeErrorAnswer,
  MESSAGE_TOO_LARGE,
  undecodable,
} from "./interceptors.ts";

/** Five books, newest (highest id) first, served without a database. */
const books: Book[] = [5, 4, 3, 2, 1].map((n) => ({
  id: `0199a7c6-0000-7000-8000-00000000000${n}`,
  title: `Book ${n}`,
  author: "Someone",
  published_on: "2001-02-03",
  created_at: "2026-01-02T03:04:05Z",
  updated_at: "2026-01-02T03:04:05Z",
}));

let server: TestGrpcServer;

beforeAll(async () => {
  server = await startTestGrpcServer({
    books: {
      get: async (id) => {
        const book = books.find((b) => b.id === id);
        if (!book) throw new NotFoundError("Book with the matching ID was not found.");
        return book;
      },
      pageAfter: async ({ after, limit }) => ({
        items: books.filter((b) => after === undefined || b.id < after).slice(0, limit),
        total: books.length,
      }),
    },
  });
}, SETUP_TIMEOUT_MS);
afterAll(() => server.close(1_000), TEARDOWN_TIMEOUT_MS);

const matrix = GRPC_ERROR_CASES.flatMap((c) =>
  c.protocols.map((protocol) => [c.name, protocol, c] as const),
);

describe("every protocol answers every case with the right status and our own message", () => {
  test.each(matrix)("%s over %s", async (_, protocol, c) => {
    const payload = await c.payload(caseContext(server.url, server.bearer));
    const answer = await callRaw(server.url, protocol, c.method, payload, server.bearer);
    expect({ code: answer.code, message: answer.message }).toEqual({
      code: c.code,
      message: expect.stringMatching(c.message),
    });
    if (protocol.startsWith("connect")) {
      expect(answer.httpStatus).toBe(CONNECT_HTTP_STATUS[c.code]);
    }
    expect(answer.raw).not.toMatch(INTERNALS);
  });

  test("the same requests, well-formed, succeed (the cases can fail)", async () => {
    const ctx = caseContext(server.url, server.bearer);
    const token = await ctx.pageToken(2);
    const { create, toBinary } = await import("@bufbuild/protobuf");
    const { ListBooksRequestSchema } = await import("../gen/petbooks/v1/books_pb.ts");
    const proto = toBinary(
      ListBooksRequestSchema,
      create(ListBooksRequestSchema, { pageSize: 2, pageToken: token }),
    );
    for (const protocol of ["grpc", "grpc-web", "connect-proto"] as const) {
      expect(
        (await callRaw(server.url, protocol, "ListBooks", { proto }, server.bearer)).code,
      ).toBe("OK");
    }
    const json = JSON.stringify({ id: books[0]?.id });
    expect(
      (await callRaw(server.url, "connect-json", "GetBook", { json }, server.bearer)).code,
    ).toBe("OK");
  });
});

test("calls refused before they start are logged once, with what Connect said", async () => {
  const before = server.logs.length;
  await callRaw(
    server.url,
    "grpc",
    "GetBook",
    { proto: Uint8Array.of(0xff, 0xff, 0xff, 0xff) },
    server.bearer,
  );
  const lines = server.logs.slice(before).filter((l) => l.msg === "rpc");
  expect(lines).toEqual([
    expect.objectContaining({
      method: "/petbooks.v1.BookService/GetBook",
      protocol: "grpc",
      code: "INVALID_ARGUMENT",
      reason: expect.stringContaining("premature EOF"),
    }),
  ]);
});

describe("decodeErrorAnswer", () => {
  test.each([
    [Code.Internal, "parse binary: premature EOF", undecodable("x.Y")],
    [
      Code.Internal,
      "received compressed envelope, but do not know how to decompress",
      COMPRESSED_WITHOUT_ENCODING,
    ],
    [Code.InvalidArgument, "cannot decode field x.Y.id from JSON: 5", undecodable("x.Y")],
    [Code.Unknown, "internal error", undecodable("x.Y")],
  ])("%p %p becomes INVALID_ARGUMENT", (code, message, expected) => {
    const answer = decodeErrorAnswer(code, message, "x.Y");
    expect(answer?.code).toBe(Code.InvalidArgument);
    expect(answer?.rawMessage).toBe(expected);
  });

  test.each([
    "message size 10 is larger than configured readMaxBytes 5",
    "message is larger than configured readMaxBytes 5 after decompression",
  ])("RESOURCE_EXHAUSTED %p stays so, in our words", (message) => {
    const answer = decodeErrorAnswer(Code.ResourceExhausted, message, "x.Y");
    expect(answer?.code).toBe(Code.ResourceExhausted);
    expect(answer?.rawMessage).toBe(MESSAGE_TOO_LARGE);
  });

  test.each([
    [Code.InvalidArgument, "protocol error: incomplete envelope"],
    [Code.Unimplemented, "protocol error: missing input message for unary method"],
    [Code.Canceled, "operation was aborted"],
    [Code.DeadlineExceeded, "the operation timed out"],
  ])("%p %p is kept", (code, message) => {
    expect(decodeErrorAnswer(code, message, "x.Y")).toBeUndefined();
  });
});
