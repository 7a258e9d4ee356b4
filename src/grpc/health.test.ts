import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { Health, HealthCheckRequestSchema } from "../gen/grpc/health/v1/health_pb.ts";
import {
  bufCurl,
  grpcJsCall,
  grpcJsClient,
  serverSentStatus,
  startTestGrpcServer,
  type TestGrpcServer,
} from "../testing/grpc-server.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { ServingStatus } from "./health.ts";

let databaseUp = true;
let server: TestGrpcServer;

beforeAll(async () => {
  server = await startTestGrpcServer({
    ping: async () => {
      if (!databaseUp) throw new Error("connection refused");
    },
    healthWatchIntervalMs: 20,
  });
}, SETUP_TIMEOUT_MS);
afterAll(() => server.close(1000), TEARDOWN_TIMEOUT_MS);
beforeEach(() => {
  databaseUp = true;
}, SETUP_TIMEOUT_MS);

describe("Check", () => {
  test.each(["", "petbooks.v1.BookService"])(
    "%p is SERVING while the database answers",
    async (service) => {
      expect(await server.client(Health).check({ service })).toMatchObject({
        status: ServingStatus.SERVING,
      });
    },
  );

  test("NOT_SERVING while the database does not answer, SERVING again once it does", async () => {
    databaseUp = false;
    expect((await server.client(Health).check({})).status).toBe(ServingStatus.NOT_SERVING);
    databaseUp = true;
    expect((await server.client(Health).check({})).status).toBe(ServingStatus.SERVING);
  });

  test("a database that hangs is NOT_SERVING, not a hung probe", async () => {
    const stuck = await startTestGrpcServer({
      ping: () => new Promise(() => {}),
      healthPingTimeoutMs: 100,
    });
    try {
      const started = performance.now();
      expect((await stuck.client(Health).check({})).status).toBe(ServingStatus.NOT_SERVING);
      expect(performance.now() - started).toBeLessThan(1_000);
    } finally {
      await stuck.close(100);
    }
  });

  test("an unknown service is NOT_FOUND", async () => {
    try {
      await server.client(Health).check({ service: "no.Such" });
      throw new Error("the call succeeded");
    } catch (err) {
      expect(ConnectError.from(err).code).toBe(Code.NotFound);
    }
  });

  test("grpc-js with the standard health.proto", async () => {
    const client = grpcJsClient(
      server.address,
      "grpc/health/v1/health.proto",
      "grpc.health.v1.Health",
    );
    try {
      expect((await grpcJsCall(client, "Check", { service: "" })).value).toEqual({
        status: "SERVING",
      });
      expect((await grpcJsCall(client, "Check", { service: "nope" })).error?.code).toBe(
        GrpcStatus.NOT_FOUND,
      );
    } finally {
      client.close();
    }
  });

  test("buf curl, through reflection", async () => {
    const result = await bufCurl(`${server.url}/grpc.health.v1.Health/Check`, ["-d", "{}"]);
    expect(result.stderr).toBe("");
    expect(JSON.parse(result.stdout)).toEqual({ status: "SERVING" });
  });
});

test("List reports every known service", async () => {
  const { statuses } = await server.client(Health).list({});
  expect(Object.keys(statuses).sort()).toEqual(["", "petbooks.v1.BookService"]);
  expect(statuses[""]?.status).toBe(ServingStatus.SERVING);
});

describe("Watch", () => {
  test("streams the status now and each change after", async () => {
    const abort = new AbortController();
    const seen: ServingStatus[] = [];
    const stream = server.client(Health).watch({}, { signal: abort.signal });
    try {
      for await (const { status } of stream) {
        seen.push(status);
        if (seen.length === 1) databaseUp = false;
        if (seen.length === 2) databaseUp = true;
        if (seen.length === 3) break;
      }
    } finally {
      abort.abort();
    }
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
  });

  test("an unknown service is SERVICE_UNKNOWN, and the call stays open", async () => {
    const abort = new AbortController();
    const stream = server
      .client(Health)
      .watch({ service: "no.Such" }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    expect((await stream.next()).value?.status).toBe(ServingStatus.SERVICE_UNKNOWN);
    const next = stream.next();
    const settled = await Promise.race([
      next.then(() => "ended"),
      Bun.sleep(100).then(() => "open"),
    ]);
    expect(settled).toBe("open");
    abort.abort();
    await next.catch(() => {});
  });

  test.each([
    ["a known service", ""],
    ["an unknown service", "no.Such"],
  ])(
    "a deadline ends a Watch of %s with DEADLINE_EXCEEDED, as the server sends it",
    async (_, service) => {
      const request = toBinary(
        HealthCheckRequestSchema,
        create(HealthCheckRequestSchema, { service }),
      );
      const status = await serverSentStatus(
        server.url,
        "/grpc.health.v1.Health/Watch",
        { "grpc-timeout": "200m" },
        request,
      );
      expect(status).toBe(String(Code.DeadlineExceeded));
    },
  );

  test("shutdown tells watchers NOT_SERVING and ends their calls", async () => {
    const own = await startTestGrpcServer({ healthWatchIntervalMs: 60_000 });
    const seen: ServingStatus[] = [];
    const watching = (async () => {
      for await (const { status } of own.client(Health).watch({})) seen.push(status);
    })();
    while (seen.length === 0) await Bun.sleep(5);
    const started = performance.now();
    await own.close(5_000);
    await watching;
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
