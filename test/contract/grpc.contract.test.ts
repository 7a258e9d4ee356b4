/**
 * The compiled `petbooks grpc` maps bad requests to the right status over all three protocols
 * (gRPC, gRPC-Web, Connect binary and JSON, each sent as raw HTTP/2: Bun's fetch cannot speak
 * h2c), and no answer carries a parser's, decompressor's or database's words. The case table is
 * the one the unit tests run (src/grpc/error-cases.ts).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { create, toBinary } from "@bufbuild/protobuf";
import { createBooksService } from "../../src/books/books.service.ts";
import { createNoCache } from "../../src/cache/cache.ts";
import { openDatabase } from "../../src/db/client.ts";
import { migrate } from "../../src/db/migrate.ts";
import { ListBooksRequestSchema } from "../../src/gen/petbooks/v1/books_pb.ts";
import { callRaw, caseContext, GRPC_ERROR_CASES, INTERNALS } from "../../src/grpc/error-cases.ts";
import { silentLogger } from "../../src/logger.ts";
import { createEmptyPostgresDatabase } from "../../src/testing/database.ts";
import { type RunningGrpcServer, startGrpcServer, tempDataDir } from "../binary.ts";
import { CONTRACT_JWT_SECRET } from "./harness.ts";

// A build, a database and a process: real work, generous limits, no speed assumed.
setDefaultTimeout(60_000);

const dataDir = tempDataDir();
const env: Record<string, string> = {
  DATA_DIR: dataDir,
  LOG_LEVEL: "info",
  JWT_SECRET: CONTRACT_JWT_SECRET,
};
let dropDatabase = async () => {};
let server: RunningGrpcServer | undefined;

/** Books go in before the server starts: the embedded database admits one process at a time. */
async function seed(n: number) {
  const database = await openDatabase(
    { databaseUrl: env.DATABASE_URL, dataDir: env.DATA_DIR },
    silentLogger,
  );
  try {
    await migrate(database.db, silentLogger);
    const books = createBooksService({ db: database.db, cache: createNoCache() });
    for (let i = 1; i <= n; i++) {
      await books.create({ title: `Book ${i}`, author: "Contract", published_on: "1999-12-31" });
    }
  } finally {
    await database.close();
  }
}

beforeAll(async () => {
  if (process.env.DATABASE_URL) {
    const database = await createEmptyPostgresDatabase();
    env.DATABASE_URL = database.url;
    dropDatabase = database.drop;
  }
  await seed(5);
  server = await startGrpcServer(env);
}, 180_000);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop("SIGKILL");
  await dropDatabase();
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

const running = () => {
  if (!server) throw new Error("petbooks grpc did not start (see beforeAll)");
  return server;
};

const matrix = GRPC_ERROR_CASES.flatMap((c) =>
  c.protocols.map((protocol) => [c.name, protocol, c] as const),
);

describe("bad requests get their status over every protocol, in our own words", () => {
  test.each(matrix)("%s over %s", async (_, protocol, c) => {
    const { url } = running();
    const answer = await callRaw(url, protocol, c.method, await c.payload(caseContext(url)));
    expect({ code: answer.code, message: answer.message }).toEqual({
      code: c.code,
      message: expect.stringMatching(c.message),
    });
    if (protocol.startsWith("connect")) {
      expect(answer.httpStatus).toBe(c.code === "NOT_FOUND" ? 404 : 400);
    }
    expect(answer.raw).not.toMatch(INTERNALS);
  });
});

test("a page token works for the page size it was issued for, over every protocol", async () => {
  const { url } = running();
  const token = await caseContext(url).pageToken(2);
  const proto = toBinary(
    ListBooksRequestSchema,
    create(ListBooksRequestSchema, { pageSize: 2, pageToken: token }),
  );
  for (const protocol of ["grpc", "grpc-web", "connect-proto"] as const) {
    expect(await callRaw(url, protocol, "ListBooks", { proto })).toMatchObject({ code: "OK" });
  }
  const json = JSON.stringify({ pageSize: 2, pageToken: token });
  expect(await callRaw(url, "connect-json", "ListBooks", { json })).toMatchObject({ code: "OK" });
});

test("nothing was an internal error, and JWT_SECRET keyed the page tokens", () => {
  const logs = running().logs();
  expect(logs).toContain('"code":"INVALID_ARGUMENT"');
  expect(logs).not.toContain('"code":"INTERNAL"');
  expect(logs).not.toContain("unhandled error");
  expect(logs).not.toContain("page tokens are signed with a random key");
});
