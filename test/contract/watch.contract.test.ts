/**
 * The compiled `petbooks grpc` without KAFKA_BROKERS answers WatchBooks by the contract over every
 * protocol it speaks (gRPC, gRPC-Web and Connect, over HTTP/2 and HTTP/1.1): UNAUTHENTICATED
 * without a token, INVALID_ARGUMENT for a bad request, FAILED_PRECONDITION for a good one (no
 * event source in this process). The live feed itself is tested end to end in
 * test/watch.e2e.test.ts (`petbooks dev`) and on the fake broker in src/events/watch-feed.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { createTokenIssuer } from "../../src/auth/tokens.ts";
import { createUsersRepository } from "../../src/auth/users.repository.ts";
import { openDatabase } from "../../src/db/client.ts";
import { migrate } from "../../src/db/migrate.ts";
import { BookService } from "../../src/gen/petbooks/v1/books_pb.ts";
import { silentLogger } from "../../src/logger.ts";
import { startGrpcServer } from "../../src/testing/binary.ts";
import { CONTRACT_JWT_SECRET, useBinaryCommand } from "./harness.ts";

let authorization = "";

// A user goes in before the server starts: the embedded database admits one process at a time.
const running = useBinaryCommand(startGrpcServer, {}, async (env) => {
  const database = await openDatabase(
    { databaseUrl: env.DATABASE_URL, dataDir: env.DATA_DIR },
    silentLogger,
  );
  try {
    await migrate(database.db, silentLogger);
    const id = Bun.randomUUIDv7();
    await createUsersRepository(database.db).insert({
      id,
      username: `watch_${id.slice(-8)}`,
      passwordHash: "not-a-hash",
    });
    authorization = `Bearer ${(await createTokenIssuer(CONTRACT_JWT_SECRET, 3600).issue(id)).token}`;
  } finally {
    await database.close();
  }
});

type Options = { baseUrl: string; interceptors: Interceptor[] };
const PROTOCOLS = [
  ["gRPC", (o: Options) => createGrpcTransport(o)],
  ["gRPC-Web over HTTP/2", (o: Options) => createGrpcWebTransport({ ...o, httpVersion: "2" })],
  ["gRPC-Web over HTTP/1.1", (o: Options) => createGrpcWebTransport({ ...o, httpVersion: "1.1" })],
  ["Connect over HTTP/2", (o: Options) => createConnectTransport({ ...o, httpVersion: "2" })],
  ["Connect over HTTP/1.1", (o: Options) => createConnectTransport({ ...o, httpVersion: "1.1" })],
] as const;

/** How a WatchBooks call with `request` ends, with or without the user's token. */
async function watchOutcome(
  transport: (o: Options) => ReturnType<typeof createGrpcTransport>,
  request: { bookIds?: string[]; resumeAfterEventId?: string },
  withToken: boolean,
) {
  const server = running();
  const token: Interceptor = (next) => (req) => {
    if (withToken) req.header.set("authorization", authorization);
    return next(req);
  };
  const client = createClient(
    BookService,
    transport({ baseUrl: server.url, interceptors: [token] }),
  );
  try {
    for await (const _ of client.watchBooks(request)) {
      return "a response";
    }
    return "the end";
  } catch (err) {
    const { code, rawMessage } = ConnectError.from(err);
    return { code: Code[code], message: rawMessage };
  }
}

describe("WatchBooks on grpc without an event source (compiled binary)", () => {
  test.each(PROTOCOLS)("over %s", async (_, transport) => {
    expect(await watchOutcome(transport, {}, false)).toMatchObject({ code: "Unauthenticated" });
    expect(await watchOutcome(transport, { bookIds: ["not-a-uuid"] }, true)).toEqual({
      code: "InvalidArgument",
      message: "every book_ids entry must be a UUID",
    });
    expect(await watchOutcome(transport, {}, true)).toEqual({
      code: "FailedPrecondition",
      message: "WatchBooks needs an event source: this grpc process runs without KAFKA_BROKERS",
    });
  });
});
