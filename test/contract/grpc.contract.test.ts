/**
 * The compiled `petbooks grpc` maps bad requests to the right status over all three protocols
 * (gRPC, gRPC-Web, Connect binary and JSON, each sent as raw HTTP/2: Bun's fetch cannot speak
 * h2c), and no answer carries a parser's, decompressor's or database's words. The case table is
 * the one the unit tests run (src/grpc/error-cases.ts). BookService wants the REST API's bearer
 * tokens (GRPC_AUTH=bearer, the default); health and reflection are open; GRPC_AUTH=none opens
 * BookService.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { create, toBinary } from "@bufbuild/protobuf";
import { createTokenIssuer } from "../../src/auth/tokens.ts";
import { createUsersRepository } from "../../src/auth/users.repository.ts";
import { createBooksServiceFor } from "../../src/books/books.module.ts";
import { createNoCache } from "../../src/cache/cache.ts";
import { openDatabase } from "../../src/db/client.ts";
import { migrate } from "../../src/db/migrate.ts";
import {
  GetBookRequestSchema,
  ListBooksRequestSchema,
} from "../../src/gen/petbooks/v1/books_pb.ts";
import {
  CONNECT_HTTP_STATUS,
  callRaw,
  caseContext,
  GRPC_ERROR_CASES,
  INTERNALS,
  PROTOCOLS,
} from "../../src/grpc/error-cases.ts";
import { silentLogger } from "../../src/logger.ts";
import {
  type RunningGrpcServer,
  runBinary,
  startGrpcServer,
  tempDataDir,
} from "../../src/testing/binary.ts";
import { createEmptyPostgresDatabase } from "../../src/testing/database.ts";
import { bufCurl } from "../../src/testing/grpc-server.ts";
import { SETUP_TIMEOUT_MS } from "../../src/testing/timeouts.ts";
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
/** `{authorization: "Bearer …"}` of a user in the database, as `serve`'s /auth/token issues it. */
let bearer: Record<"authorization", string> = { authorization: "" };
let firstBookId = "";

/**
 * Books and a user go in before the server starts: the embedded database admits one process at a
 * time. The user's token is signed with the JWT_SECRET both commands share, as `serve` signs it.
 */
async function seed(target: Record<string, string>, n: number) {
  const database = await openDatabase(
    { databaseUrl: target.DATABASE_URL, dataDir: target.DATA_DIR },
    silentLogger,
  );
  try {
    await migrate(database.db, silentLogger);
    const books = createBooksServiceFor({ db: database.db, cache: createNoCache() });
    for (let i = 1; i <= n; i++) {
      const book = await books.create({
        title: `Book ${i}`,
        author: "Contract",
        published_on: "1999-12-31",
      });
      firstBookId ||= book.id;
    }
    const id = Bun.randomUUIDv7();
    await createUsersRepository(database.db).insert({
      id,
      username: `grpc_${id.slice(-8)}`,
      passwordHash: "not-a-hash",
    });
    const { token } = await createTokenIssuer(CONTRACT_JWT_SECRET, 3600).issue(id);
    return { authorization: `Bearer ${token}` };
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
  bearer = await seed(env, 5);
  server = await startGrpcServer(env);
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop("SIGKILL");
  await dropDatabase();
  rmSync(dataDir, { recursive: true, force: true });
}, SETUP_TIMEOUT_MS);

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
    const payload = await c.payload(caseContext(url, bearer));
    const answer = await callRaw(url, protocol, c.method, payload, bearer);
    expect({ code: answer.code, message: answer.message }).toEqual({
      code: c.code,
      message: expect.stringMatching(c.message),
    });
    if (protocol.startsWith("connect")) {
      expect(answer.httpStatus).toBe(CONNECT_HTTP_STATUS[c.code]);
    }
    expect(answer.raw).not.toMatch(INTERNALS);
  });
});

test("a page token works for the page size it was issued for, over every protocol", async () => {
  const { url } = running();
  const token = await caseContext(url, bearer).pageToken(2);
  const proto = toBinary(
    ListBooksRequestSchema,
    create(ListBooksRequestSchema, { pageSize: 2, pageToken: token }),
  );
  for (const protocol of ["grpc", "grpc-web", "connect-proto"] as const) {
    expect(await callRaw(url, protocol, "ListBooks", { proto }, bearer)).toMatchObject({
      code: "OK",
    });
  }
  const json = JSON.stringify({ pageSize: 2, pageToken: token });
  expect(await callRaw(url, "connect-json", "ListBooks", { json }, bearer)).toMatchObject({
    code: "OK",
  });
});

describe("BookService wants a bearer token (GRPC_AUTH=bearer, the default)", () => {
  const getBook = () => {
    const message = create(GetBookRequestSchema, { id: firstBookId });
    return { proto: toBinary(GetBookRequestSchema, message), json: JSON.stringify(message) };
  };
  const now = () => Math.floor(Date.now() / 1000);
  const refused: [string, () => Promise<Record<string, string>>][] = [
    ["no token", async () => ({})],
    ["garbage", async () => ({ authorization: "Bearer not.a.jwt" })],
    [
      "a token signed with another secret",
      async () => {
        const issuer = createTokenIssuer("another-secret-0123456789-0123456789-abcdef", 3600);
        return { authorization: `Bearer ${(await issuer.issue(Bun.randomUUIDv7())).token}` };
      },
    ],
    [
      "an expired token",
      async () => {
        const issuer = createTokenIssuer(CONTRACT_JWT_SECRET, 60, {
          now: () => (now() - 3600) * 1000,
        });
        return { authorization: `Bearer ${(await issuer.issue(Bun.randomUUIDv7())).token}` };
      },
    ],
    [
      "a valid token of a user that does not exist",
      async () => {
        const issuer = createTokenIssuer(CONTRACT_JWT_SECRET, 3600);
        return { authorization: `Bearer ${(await issuer.issue(Bun.randomUUIDv7())).token}` };
      },
    ],
  ];
  const matrix = PROTOCOLS.flatMap((protocol) =>
    refused.map(([name, headers]) => [protocol, name, headers] as const),
  );

  test.each(matrix)("%s with %s is UNAUTHENTICATED", async (protocol, _, headers) => {
    const { url } = running();
    for (const [method, payload] of [
      ["GetBook", getBook()],
      ["ListBooks", { proto: new Uint8Array(), json: "{}" }],
      // Before the message is looked at: undecodable bytes are refused the same way.
      ["GetBook", { proto: Uint8Array.of(0xff, 0xff), json: '{"id":' }],
    ] as const) {
      const answer = await callRaw(url, protocol, method, payload, await headers());
      expect({ code: answer.code, message: answer.message }).toEqual({
        code: "UNAUTHENTICATED",
        message: expect.stringMatching(/^(A bearer token is required|The token is invalid)/),
      });
      if (protocol.startsWith("connect")) expect(answer.httpStatus).toBe(401);
      expect(answer.raw).not.toMatch(INTERNALS);
    }
  });

  test.each(PROTOCOLS)("%s with the user's token is OK", async (protocol) => {
    const answer = await callRaw(running().url, protocol, "GetBook", getBook(), bearer);
    expect(answer.code).toBe("OK");
    expect(answer.raw).toContain("Book 1");
  });

  test('buf curl, as the README shows it: -H "Authorization: Bearer $TOKEN"', async () => {
    const url = `${running().url}/petbooks.v1.BookService/GetBook`;
    const body = ["-d", JSON.stringify({ id: firstBookId })];
    const ok = await bufCurl(url, body, { authorization: bearer.authorization });
    expect(JSON.parse(ok.stdout)).toMatchObject({ id: firstBookId, title: "Book 1" });
    const refusedCall = await bufCurl(url, body);
    expect(JSON.parse(refusedCall.stderr)).toMatchObject({ code: "unauthenticated" });
  });

  test("health and reflection are open", async () => {
    const health = await bufCurl(`${running().url}/grpc.health.v1.Health/Check`, [
      "-d",
      JSON.stringify({ service: "petbooks.v1.BookService" }),
    ]);
    expect(JSON.parse(health.stdout)).toEqual({ status: "SERVING" });
    const services = await bufCurl(running().url, ["--list-services"]);
    expect(services.stdout).toContain("petbooks.v1.BookService");
  });

  test("the refusals are logged as UNAUTHENTICATED, without any token", () => {
    const logs = running().logs();
    expect(logs).toContain('"code":"UNAUTHENTICATED"');
    expect(logs).not.toContain(bearer.authorization.slice(7));
    expect(logs).not.toContain("not.a.jwt");
  });
});

test("without JWT_SECRET, grpc refuses to start unless GRPC_AUTH=none, saying why", async () => {
  const { JWT_SECRET: _, ...withoutSecret } = env;
  const result = await runBinary(["grpc"], { ...withoutSecret, GRPC_PORT: "0" });
  expect(result.code).toBe(1);
  expect(result.stderr).toContain("invalid configuration: JWT_SECRET is required by grpc");
  expect(result.stderr).toContain("GRPC_AUTH=none");
});

describe("GRPC_AUTH=none", () => {
  const openDir = tempDataDir();
  const openEnv: Record<string, string> = {
    DATA_DIR: openDir,
    LOG_LEVEL: "info",
    GRPC_AUTH: "none",
  };
  let open: RunningGrpcServer | undefined;
  let dropOpen = async () => {};

  beforeAll(async () => {
    if (process.env.DATABASE_URL) {
      const database = await createEmptyPostgresDatabase();
      openEnv.DATABASE_URL = database.url;
      dropOpen = database.drop;
    }
    await seed(openEnv, 3);
    // No JWT_SECRET: allowed without authentication, with page tokens of its own (and a warning).
    open = await startGrpcServer(openEnv);
  }, 180_000);

  afterAll(async () => {
    if (open && open.proc.exitCode === null) await open.stop("SIGKILL");
    await dropOpen();
    rmSync(openDir, { recursive: true, force: true });
  }, 60_000);

  test.each(PROTOCOLS)("BookService answers %s callers without a token", async (protocol) => {
    if (!open) throw new Error("petbooks grpc (GRPC_AUTH=none) did not start");
    const answer = await callRaw(open.url, protocol, "ListBooks", {
      proto: new Uint8Array(),
      json: "{}",
    });
    expect(answer.code).toBe("OK");
  });

  test("it says so at startup", () => {
    const logs = open?.logs() ?? "";
    expect(logs).toContain("GRPC_AUTH=none");
    expect(logs).toContain('"auth":"none"');
  });
});

test("nothing was an internal error, and JWT_SECRET keyed the page tokens", () => {
  const logs = running().logs();
  expect(logs).toContain('"code":"INVALID_ARGUMENT"');
  expect(logs).not.toContain('"code":"INTERNAL"');
  expect(logs).not.toContain("unhandled error");
  expect(logs).not.toContain("page tokens are signed with a random key");
});
