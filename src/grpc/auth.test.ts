import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, createClient, createContextValues, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { createAuthService } from "../auth/auth.service.ts";
import { createTokenIssuer } from "../auth/tokens.ts";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { BookService, GetBookRequestSchema } from "../gen/petbooks/v1/books_pb.ts";
import { storedBook } from "../testing/factories.ts";
import {
  bufCurl,
  failureOf,
  grpcJsCall,
  grpcJsClient,
  startTestGrpcServer,
  TEST_GRPC_JWT_SECRET,
  type TestGrpcServer,
  testAuth,
} from "../testing/grpc-server.ts";
import { memoryUsers } from "../testing/memory-users.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { authCheck } from "./auth.ts";
import { callRaw, PROTOCOLS } from "./error-cases.ts";

const ID = "0199a7c6-0000-7000-8000-000000000001";
const book = storedBook(ID);
const books = {
  get: async () => book,
  pageAfter: async () => ({ items: [book], total: 1 }),
};

const TOKEN_REQUIRED = "A bearer token is required (Authorization: Bearer <token>).";
const TOKEN_INVALID = "The token is invalid or expired.";

let server: TestGrpcServer;

beforeAll(async () => {
  server = await startTestGrpcServer({ books });
}, SETUP_TIMEOUT_MS);
afterAll(() => server.close(1000), TEARDOWN_TIMEOUT_MS);

const transports: [string, (baseUrl: string) => Transport][] = [
  ["gRPC", (baseUrl) => createGrpcTransport({ baseUrl })],
  ["gRPC-Web", (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" })],
  ["Connect", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" })],
];

const now = () => Math.floor(Date.now() / 1000);
/** `authorization` values that are refused, and with which message. */
const refused: [string, () => Promise<string | undefined>, string][] = [
  ["no authorization", async () => undefined, TOKEN_REQUIRED],
  ["an empty bearer", async () => "Bearer ", TOKEN_REQUIRED],
  ["Basic credentials", async () => `Basic ${btoa("a:b")}`, TOKEN_REQUIRED],
  ["garbage", async () => "Bearer not.a.jwt", TOKEN_INVALID],
  [
    "a token signed with another secret",
    async () => {
      const issuer = createTokenIssuer("another-secret-0123456789-0123456789-abcdef", 3600);
      return `Bearer ${(await issuer.issue(Bun.randomUUIDv7())).token}`;
    },
    TOKEN_INVALID,
  ],
  [
    "an expired token",
    async () => {
      const issuer = createTokenIssuer(TEST_GRPC_JWT_SECRET, 60, {
        now: () => (now() - 3600) * 1000,
      });
      return `Bearer ${(await issuer.issue(Bun.randomUUIDv7())).token}`;
    },
    TOKEN_INVALID,
  ],
  [
    "a valid token of a user that does not exist",
    async () =>
      `Bearer ${(await createTokenIssuer(TEST_GRPC_JWT_SECRET, 3600).issue(Bun.randomUUIDv7())).token}`,
    TOKEN_INVALID,
  ],
];

describe("BookService needs a bearer token, over every protocol", () => {
  const matrix = transports.flatMap(([protocol, transport]) =>
    refused.map(([name, header, message]) => [protocol, name, transport, header, message] as const),
  );

  test.each(matrix)("%s with %s is UNAUTHENTICATED", async (_, __, transport, header, message) => {
    const authorization = await header();
    const client = createClient(BookService, transport(server.url));
    const headers = authorization === undefined ? {} : { authorization };
    // One call at a time: a second one started early could fail before anyone awaits it.
    for (const call of [
      () => client.getBook({ id: ID }, { headers }),
      () => client.listBooks({}, { headers }),
    ]) {
      const failure = await failureOf(call());
      expect(failure.code).toBe(Code.Unauthenticated);
      expect(failure.rawMessage).toBe(message);
    }
  });

  test.each(transports)("%s with the user's token is OK", async (_, transport) => {
    const client = createClient(BookService, transport(server.url));
    const answer = await client.getBook({ id: ID }, { headers: server.bearer });
    expect(answer.title).toBe("Dune");
    expect((await client.listBooks({}, { headers: server.bearer })).totalSize).toBe(1);
  });

  test("grpc-js passes it as metadata", async () => {
    const client = grpcJsClient(
      server.address,
      "petbooks/v1/books.proto",
      "petbooks.v1.BookService",
    );
    try {
      expect((await grpcJsCall(client, "GetBook", { id: ID })).error?.code).toBe(
        GrpcStatus.UNAUTHENTICATED,
      );
      const { value } = await grpcJsCall(client, "GetBook", { id: ID }, server.bearer);
      expect(value.title).toBe("Dune");
    } finally {
      client.close();
    }
  });

  test("buf curl passes it with -H, as the README shows", async () => {
    const url = `${server.url}/petbooks.v1.BookService/GetBook`;
    const body = ["-d", JSON.stringify({ id: ID })];
    const without = await bufCurl(url, body, { schema: true });
    expect(JSON.parse(without.stderr)).toMatchObject({ code: "unauthenticated" });
    const withToken = await bufCurl(url, body, {
      schema: true,
      authorization: server.bearer.authorization,
    });
    expect(JSON.parse(withToken.stdout)).toMatchObject({ id: ID, title: "Dune" });
  });

  test("it comes before the message is looked at: undecodable bytes are UNAUTHENTICATED too", async () => {
    const garbage = { proto: Uint8Array.of(0xff, 0xff, 0xff, 0xff), json: '{"id":' };
    for (const protocol of PROTOCOLS) {
      const answer = await callRaw(server.url, protocol, "GetBook", garbage);
      expect({ protocol, code: answer.code, message: answer.message }).toEqual({
        protocol,
        code: "UNAUTHENTICATED",
        message: TOKEN_REQUIRED,
      });
      if (protocol.startsWith("connect")) expect(answer.httpStatus).toBe(401);
      // The same bytes with a token are the caller's mistake (the test can fail).
      const authenticated = await callRaw(server.url, protocol, "GetBook", garbage, server.bearer);
      expect(authenticated.code).toBe("INVALID_ARGUMENT");
    }
    const valid = toBinary(GetBookRequestSchema, create(GetBookRequestSchema, { id: ID }));
    expect((await callRaw(server.url, "grpc", "GetBook", { proto: valid })).code).toBe(
      "UNAUTHENTICATED",
    );
  });

  test("each refusal is logged as UNAUTHENTICATED, without the token", async () => {
    const token = "Bearer not.a.valid-token-for-the-log-test";
    await failureOf(
      createClient(BookService, createGrpcTransport({ baseUrl: server.url })).getBook(
        { id: ID },
        { headers: { authorization: token, "x-request-id": "auth-log-test" } },
      ),
    );
    expect(server.logs.find((l) => l.request_id === "auth-log-test")).toMatchObject({
      msg: "rpc",
      method: "/petbooks.v1.BookService/GetBook",
      code: "UNAUTHENTICATED",
    });
    expect(JSON.stringify(server.logs)).not.toContain("valid-token-for-the-log-test");
  });
});

describe("open services", () => {
  test.each(transports)("health answers %s callers without a token", async (_, transport) => {
    const health = createClient(Health, transport(server.url));
    expect((await health.check({ service: BookService.typeName })).status).toBeDefined();
  });

  test("reflection answers without a token", async () => {
    const list = await bufCurl(server.url, ["--list-services"]);
    expect(list.stdout).toContain("petbooks.v1.BookService");
  });
});

describe("a service a feature adds", () => {
  test("needs a token without being named anywhere: only health and reflection are open", async () => {
    const bearer = { mode: "bearer" as const, authenticate: () => Promise.reject(new Error("no")) };
    const values = createContextValues();
    const check = (service: string) => authCheck(bearer, service, new Headers(), values);
    expect(await check("petbooks.v1.OwnerService")).toBeInstanceOf(Error);
    for (const open of [
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]) {
      expect(await check(open)).toBeUndefined();
    }
  });
});

describe("GRPC_AUTH=none", () => {
  test("BookService answers anyone, with a warning at startup", async () => {
    const open = await startTestGrpcServer({ books, auth: { mode: "none" } });
    try {
      for (const [, transport] of transports) {
        const client = createClient(BookService, transport(open.url));
        expect((await client.getBook({ id: ID })).title).toBe("Dune");
      }
      expect(open.logs).toContainEqual(
        expect.objectContaining({ level: "warn", msg: expect.stringContaining("GRPC_AUTH=none") }),
      );
    } finally {
      await open.close(1000);
    }
  });
});

describe("a deleted user's tokens", () => {
  test("stop working at once where the same AuthService deleted the user (dev)", async () => {
    const auth = await testAuth();
    const shared = await startTestGrpcServer({
      books,
      auth: { mode: "bearer", authenticate: (h) => auth.service.authenticate(h) },
    });
    try {
      const client = shared.client(BookService, `Bearer ${auth.token}`);
      expect((await client.getBook({ id: ID })).id).toBe(ID);
      await auth.service.deleteUser(auth.userId);
      const failure = await failureOf(client.getBook({ id: ID }));
      expect(failure.code).toBe(Code.Unauthenticated);
    } finally {
      await shared.close(1000);
    }
  });

  test("stop working in another process (grpc) once its user cache time has passed", async () => {
    const users = memoryUsers();
    const { id } = users.add("leaving");
    const token = (await createTokenIssuer(TEST_GRPC_JWT_SECRET, 3600).issue(id)).token;
    let clock = Date.now();
    const grpcSide = createAuthService({
      users,
      tokens: createTokenIssuer(TEST_GRPC_JWT_SECRET, 3600),
      userCacheMs: 5_000,
      now: () => clock,
    });
    const other = await startTestGrpcServer({
      books,
      auth: { mode: "bearer", authenticate: (h) => grpcSide.authenticate(h) },
    });
    try {
      const client = other.client(BookService, `Bearer ${token}`);
      expect((await client.getBook({ id: ID })).id).toBe(ID);
      // Deleted by `serve`, which shares the database but not this process' memory.
      await users.delete(id);
      clock += 4_999;
      expect((await client.getBook({ id: ID })).id).toBe(ID);
      clock += 2;
      expect((await failureOf(client.getBook({ id: ID }))).code).toBe(Code.Unauthenticated);
    } finally {
      await other.close(1000);
    }
  });
});

test("a unary call is authenticated once, however it ends", async () => {
  const auth = await testAuth();
  let checks = 0;
  const counted = await startTestGrpcServer({
    books,
    auth: {
      mode: "bearer",
      authenticate: (h) => {
        checks += 1;
        return auth.service.authenticate(h);
      },
    },
  });
  try {
    const headers = { authorization: `Bearer ${auth.token}` };
    await counted.client(BookService, null).getBook({ id: ID }, { headers });
    expect(checks).toBe(1);
    await callRaw(counted.url, "grpc", "GetBook", { proto: Uint8Array.of(0xff) }, headers);
    expect(checks).toBe(2);
    // Health never asks.
    await counted.client(Health, null).check({});
    expect(checks).toBe(2);
  } finally {
    await counted.close(1000);
  }
});
