import { describe, expect, test } from "bun:test";
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { BookService, GetBookRequestSchema } from "../gen/petbooks/v1/books_pb.ts";
import { storedBook } from "../testing/factories.ts";
import { grpcJsCall, grpcJsClient, startTestGrpcServer } from "../testing/grpc-server.ts";
import { ServingStatus } from "./health.ts";

const ID = "0199a7c6-0000-7000-8000-000000000000";
const book = storedBook(ID);

/** A GetBook that answers only when the test says so. */
function gatedBooks() {
  let release = () => {};
  let entered = () => {};
  const inside = new Promise<void>((resolve) => {
    entered = resolve;
  });
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    books: {
      get: async () => {
        entered();
        await gate;
        return book;
      },
    },
    inside,
    release: () => release(),
  };
}

async function settle<T>(call: Promise<T>): Promise<{ value?: T; error?: ConnectError }> {
  try {
    return { value: await call };
  } catch (err) {
    return { error: ConnectError.from(err) };
  }
}

describe("graceful shutdown", () => {
  test("finishes in-flight calls, refuses new connections, then stops", async () => {
    const gated = gatedBooks();
    const server = await startTestGrpcServer({ books: gated.books });
    const inFlight = settle(server.client(BookService).getBook({ id: ID }));
    await gated.inside;
    let closed = false;
    const closing = server.close(5_000).then(() => {
      closed = true;
    });
    await Bun.sleep(50);
    expect(closed).toBe(false);
    // A new client cannot get in any more.
    const late = grpcJsClient(
      server.address,
      "grpc/health/v1/health.proto",
      "grpc.health.v1.Health",
    );
    try {
      expect((await grpcJsCall(late, "Check", {})).error).toBeDefined();
    } finally {
      late.close();
    }
    gated.release();
    expect((await inFlight).value?.title).toBe("Dune");
    await closing;
    expect(closed).toBe(true);
  });

  test("cuts calls that outlast the grace period", async () => {
    const gated = gatedBooks();
    const server = await startTestGrpcServer({ books: gated.books });
    const inFlight = settle(server.client(BookService).getBook({ id: ID }));
    await gated.inside;
    const started = performance.now();
    await server.close(100);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect((await inFlight).error?.code).toBe(Code.Unavailable);
    expect(
      server.logs.some((l) => l.msg === "in-flight calls did not finish in time; closing them"),
    ).toBe(true);
    gated.release();
  });

  test("idle connections do not hold it open, and close is idempotent", async () => {
    const server = await startTestGrpcServer();
    expect((await server.client(Health).check({})).status).toBe(ServingStatus.SERVING);
    const started = performance.now();
    await Promise.all([server.close(5_000), server.close(5_000)]);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe("page tokens", () => {
  test("without a secret (GRPC_AUTH=none only), the server warns that its tokens are its own", async () => {
    const server = await startTestGrpcServer({
      auth: { mode: "none" },
      pageTokenSecret: undefined,
    });
    try {
      expect(server.logs).toContainEqual(
        expect.objectContaining({
          level: "warn",
          msg: expect.stringContaining("JWT_SECRET is not set"),
        }),
      );
    } finally {
      await server.close(1_000);
    }
  });

  test("with one, it does not", async () => {
    const server = await startTestGrpcServer({
      pageTokenSecret: "server-test-secret-0123456789-0123456789",
    });
    try {
      expect(server.logs.filter((l) => l.level === "warn")).toEqual([]);
    } finally {
      await server.close(1_000);
    }
  });
});

describe("misbehaving clients", () => {
  test("streams reset before or during a call do not take the server down", async () => {
    const gated = gatedBooks();
    const server = await startTestGrpcServer({ books: gated.books });
    try {
      const message = toBinary(GetBookRequestSchema, create(GetBookRequestSchema, { id: ID }));
      const request = Buffer.concat([Buffer.of(0, 0, 0, 0, message.length), message]);
      const session = http2.connect(server.url);
      session.on("error", () => {});
      for (let i = 0; i < 20; i++) {
        const stream = session.request({
          ...server.bearer,
          ":method": "POST",
          ":path": "/petbooks.v1.BookService/GetBook",
          "content-type": "application/grpc",
          te: "trailers",
        });
        stream.on("error", () => {});
        // Half of them vanish at once, half once the handler is running.
        if (i % 2 === 0) stream.close(http2.constants.NGHTTP2_CANCEL);
        else stream.end(request);
      }
      await gated.inside;
      session.destroy();
      // Garbage that is not HTTP/2 at all.
      const socket = await Bun.connect({
        hostname: "127.0.0.1",
        port: server.port,
        socket: { data() {}, error() {} },
      });
      socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      socket.end();
      gated.release();
      await Bun.sleep(50);
      // Still serving, to a well-behaved client.
      expect((await server.client(BookService).getBook({ id: ID })).title).toBe("Dune");
    } finally {
      gated.release();
      await server.close(1_000);
    }
  });

  test("an unknown method is UNIMPLEMENTED", async () => {
    const server = await startTestGrpcServer();
    const client = new grpc.Client(server.address, grpc.credentials.createInsecure());
    try {
      const error = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.makeUnaryRequest(
          "/petbooks.v1.BookService/DeleteBook",
          (bytes: Buffer) => bytes,
          (bytes: Buffer) => bytes,
          Buffer.alloc(0),
          (err) => resolve(err),
        ),
      );
      expect(error?.code).toBe(grpc.status.UNIMPLEMENTED);
    } finally {
      client.close();
      await server.close(1_000);
    }
  });
});
