/**
 * `/metrics` of the compiled `serve` and `grpc`, black-box, after real traffic: a request raises
 * the histogram of its route template, a call the count of its gRPC code (over gRPC, gRPC-Web and
 * Connect), a book write the outbox's published count; METRICS_TOKEN guards the listener and
 * METRICS=off removes it; and both outputs pass `promtool check metrics` (Debian: `apt-get
 * install prometheus`; skipped, saying so, where it is absent). On PostgreSQL, a relay stalled
 * from outside (a trigger that fails the relay's update of the outbox, as a broken database or
 * broker would) raises the oldest-pending age and the publish failures, and they fall back once
 * the fault is gone.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { create, toBinary } from "@bufbuild/protobuf";
import postgres from "postgres";
import {
  GetBookRequestSchema,
  ListBooksRequestSchema,
} from "../../src/gen/petbooks/v1/books_pb.ts";
import { callRaw, PROTOCOLS } from "../../src/grpc/error-cases.ts";
import {
  type RunningGrpcServer,
  type RunningServer,
  startDev,
  startGrpcServer,
  startServer,
  tempDataDir,
} from "../../src/testing/binary.ts";
import { createEmptyPostgresDatabase } from "../../src/testing/database.ts";
import { promtoolProblems, sample, sumOf } from "../../src/testing/metrics-text.ts";
import { SETUP_TIMEOUT_MS } from "../../src/testing/timeouts.ts";
import { until } from "../../src/testing/until.ts";
import {
  CONTRACT_API_KEY,
  CONTRACT_JWT_SECRET,
  useBinaryCommand,
  useContractServer,
} from "./harness.ts";

/** `until`, asking the binary at most every 200 ms. */
const poll = <T>(what: string, check: () => T | Promise<T>) => until(what, check, { everyMs: 200 });

const server = useContractServer();
const PROMTOOL = Bun.which("promtool");
if (!PROMTOOL) {
  console.warn(
    "metrics.contract: promtool not found (apt-get install prometheus): `promtool check metrics` skipped",
  );
}
const METRICS_TOKEN = "contract-metrics-token-0123456789";

async function scrape(url: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${text.slice(0, 300)}`);
  expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
  return text;
}

async function expectPromtoolClean(text: string) {
  expect(await promtoolProblems(text)).toBeUndefined();
}

const requestCount = (text: string, method: string, route: string, statusClass: string) =>
  sumOf(text, "http_server_request_duration_seconds_count", {
    method,
    route,
    status_class: statusClass,
  });

async function createBook(base: string, token: string) {
  const res = await fetch(`${base}/books`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ title: "Metrics", author: "A. Tester", published_on: "2020-02-02" }),
  });
  if (res.status !== 201) throw new Error(`POST /books: ${res.status} ${await res.text()}`);
}

describe("serve /metrics", () => {
  test("each request raises the histogram of its method, route template and status class", async () => {
    const token = await server.bearer();
    const before = await scrape(`${server.url}/metrics`);
    for (let i = 0; i < 3; i++) expect((await server.api("/pets")).status).toBe(200);
    const unknownId = crypto.randomUUID();
    const unknown = await server.api(`/books/${unknownId}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(unknown.status).toBe(404);
    expect((await server.api("/no/such/route")).status).toBe(404);
    const after = await scrape(`${server.url}/metrics`);
    const delta = (method: string, route: string, status: string) =>
      requestCount(after, method, route, status) - requestCount(before, method, route, status);
    expect(delta("GET", "/pets", "2xx")).toBe(3);
    expect(delta("GET", "/books/:id", "4xx")).toBe(1);
    expect(delta("GET", "unmatched", "4xx")).toBe(1);
    // Labels hold templates, never a raw path or an id.
    expect(after).not.toContain(unknownId);
    expect(after).not.toContain("/no/such/route");
    expect(after).toContain("# TYPE http_server_requests_in_flight gauge");
  });

  test("a refused API key counts as an auth failure", async () => {
    const count = async () =>
      sumOf(await scrape(`${server.url}/metrics`), "petbooks_auth_failures_total");
    const before = await count();
    expect((await server.api("/pets", { apiKey: null })).status).toBe(401);
    expect(await count()).toBe(before + 1);
  });

  test("a book write is published by the relay and counted", async () => {
    const token = await server.bearer();
    const published = async () =>
      sample(await scrape(`${server.url}/metrics`), "petbooks_outbox_events_published_total") ?? 0;
    const before = await published();
    await createBook(server.url, token);
    await poll("the event to be published", async () => (await published()) > before);
    const text = await scrape(`${server.url}/metrics`);
    expect(sumOf(text, "petbooks_outbox_relay_batch_size_count")).toBeGreaterThan(0);
    expect(sample(text, "petbooks_outbox_stall_threshold_seconds")).toBe(60);
    expect(sample(text, "petbooks_outbox_pending_events")).toBeDefined();
  });

  test("build_info and the process metrics are there, and the text passes promtool", async () => {
    const text = await scrape(`${server.url}/metrics`);
    expect(text).toMatch(/^petbooks_build_info\{version="[^"]+",commit="[^"]+",bun="[^"]+"\} 1$/m);
    for (const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "process_open_fds",
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    await expectPromtoolClean(text);
  });

  test("/metrics needs no API key and is not in the OpenAPI document", async () => {
    expect((await fetch(`${server.url}/metrics`)).status).toBe(200);
    const doc = (await (await fetch(`${server.url}/docs/json`)).json()) as { paths: object };
    expect(Object.keys(doc.paths)).not.toContain("/metrics");
  });
});

describe("grpc's metrics listener (METRICS_PORT), behind METRICS_TOKEN", () => {
  const running = useBinaryCommand(startGrpcServer, { GRPC_AUTH: "none", METRICS_TOKEN });
  let grpc: RunningGrpcServer | undefined;
  let metricsUrl = "";

  beforeAll(() => {
    grpc = running();
    const line = grpc
      .logs()
      .split("\n")
      .find((l) => l.includes('"msg":"metrics listening"'));
    metricsUrl = (JSON.parse(line ?? "{}") as { url?: string }).url ?? "";
  }, SETUP_TIMEOUT_MS);

  const auth = { authorization: `Bearer ${METRICS_TOKEN}` };

  test("refuses a scrape without the token, and serves nothing but /metrics", async () => {
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const refused = await fetch(metricsUrl);
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toStartWith("Bearer");
    expect(await refused.text()).not.toContain(METRICS_TOKEN);
    expect(
      (await fetch(metricsUrl.replace(/\/metrics$/, "/other"), { headers: auth })).status,
    ).toBe(404);
  });

  test("every protocol's calls are counted by service, method and code", async () => {
    const before = await scrape(metricsUrl, auth);
    const missing = toBinary(
      GetBookRequestSchema,
      create(GetBookRequestSchema, { id: crypto.randomUUID() }),
    );
    const list = toBinary(ListBooksRequestSchema, create(ListBooksRequestSchema, { pageSize: 5 }));
    const url = grpc?.url ?? "";
    for (const protocol of PROTOCOLS) {
      const payload = (proto: Uint8Array, json: string) =>
        protocol === "connect-json" ? { json } : { proto };
      await callRaw(
        url,
        protocol,
        "GetBook",
        payload(missing, JSON.stringify({ id: crypto.randomUUID() })),
      );
      await callRaw(url, protocol, "ListBooks", payload(list, JSON.stringify({ pageSize: 5 })));
    }
    const after = await scrape(metricsUrl, auth);
    const delta = (name: string, labels: Record<string, string>) =>
      sumOf(after, name, labels) - sumOf(before, name, labels);
    const book = { grpc_service: "petbooks.v1.BookService", grpc_type: "unary" };
    const n = PROTOCOLS.length;
    expect(delta("grpc_server_started_total", { ...book, grpc_method: "GetBook" })).toBe(n);
    expect(
      delta("grpc_server_handled_total", {
        ...book,
        grpc_method: "GetBook",
        grpc_code: "NotFound",
      }),
    ).toBe(n);
    expect(
      delta("grpc_server_handled_total", { ...book, grpc_method: "ListBooks", grpc_code: "OK" }),
    ).toBe(n);
    expect(delta("grpc_server_handling_seconds_count", { ...book, grpc_method: "ListBooks" })).toBe(
      n,
    );
    expect(after).toMatch(/^petbooks_build_info\{/m);
    await expectPromtoolClean(after);
  });
});

describe("dev: one /metrics for HTTP, gRPC and the consumer", () => {
  const running = useBinaryCommand(startDev, { GRPC_AUTH: "none" });

  test("a book write reaches the consumer, a call the gRPC counters, on the HTTP port", async () => {
    const dev = running();
    const base = dev.httpUrl;
    const username = `d${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    const password = "correct horse battery staple";
    await fetch(`${base}/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    const token = (await (
      await fetch(`${base}/auth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "password", username, password }),
      })
    ).json()) as { access_token: string };
    await createBook(base, token.access_token);
    const list = toBinary(ListBooksRequestSchema, create(ListBooksRequestSchema, { pageSize: 5 }));
    await callRaw(dev.grpcUrl, "grpc", "ListBooks", { proto: list });
    let text = "";
    await poll("the consumer to count the event", async () => {
      text = await scrape(`${base}/metrics`);
      return sumOf(text, "petbooks_consumer_events_total", { result: "new" }) >= 1;
    });
    expect(
      sumOf(text, "grpc_server_handled_total", { grpc_method: "ListBooks", grpc_code: "OK" }),
    ).toBe(1);
    expect(sumOf(text, "petbooks_consumer_batch_duration_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(requestCount(text, "POST", "/books", "2xx")).toBe(1);
    await expectPromtoolClean(text);
  });
});

describe("METRICS=off", () => {
  const running = useBinaryCommand(startServer, { METRICS: "off" });

  test("serve has no /metrics", async () => {
    const off = running();
    expect((await fetch(`${off.url}/metrics`)).status).toBe(404);
    expect(
      (await fetch(`${off.url}/pets`, { headers: { "x-api-key": CONTRACT_API_KEY } })).status,
    ).toBe(200);
  });
});

/**
 * Needs PostgreSQL: the fault is put into the database from outside the process, which the
 * embedded database (owned by the process) does not allow.
 */
describe.skipIf(!process.env.DATABASE_URL)("a stalled relay (PostgreSQL)", () => {
  const dataDir = tempDataDir();
  let stalled: RunningServer | undefined;
  let drop = async () => {};
  let sql: postgres.Sql | undefined;

  beforeAll(async () => {
    const database = await createEmptyPostgresDatabase();
    drop = database.drop;
    stalled = await startServer({
      API_KEY: CONTRACT_API_KEY,
      JWT_SECRET: CONTRACT_JWT_SECRET,
      DATA_DIR: dataDir,
      DATABASE_URL: database.url,
      LOG_LEVEL: "info",
      // The stall check runs every half of this: the age shows within a second or so.
      OUTBOX_STALL_SECONDS: "1",
    });
    sql = postgres(database.url, { max: 1, onnotice: () => {} });
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await sql?.end();
    if (stalled && stalled.proc.exitCode === null) await stalled.stop("SIGKILL");
    await drop();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  test("the oldest-pending age and the publish failures rise, and fall back after", async () => {
    const base = stalled?.url ?? "";
    const db = sql as postgres.Sql;
    // The relay's claim marks rows published with an UPDATE: this trigger makes every claim fail.
    await db.unsafe(`
      create function petbooks_test_stall() returns trigger language plpgsql as
        $$ begin raise exception 'injected relay fault'; end $$;
      create trigger petbooks_test_stall before update on outbox
        for each row execute function petbooks_test_stall()`);
    const username = `m${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    const password = "correct horse battery staple";
    const register = await fetch(`${base}/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    expect(register.status).toBe(201);
    const tokenRes = await fetch(`${base}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", username, password }),
    });
    const { access_token } = (await tokenRes.json()) as { access_token: string };
    // The write still succeeds: its event waits in the outbox.
    await createBook(base, access_token);

    let text = "";
    await poll("the outbox to show as stalled", async () => {
      text = await scrape(`${base}/metrics`);
      return (sample(text, "petbooks_outbox_stalled") ?? 0) === 1;
    });
    expect(sample(text, "petbooks_outbox_oldest_pending_age_seconds")).toBeGreaterThanOrEqual(1);
    expect(sample(text, "petbooks_outbox_pending_events")).toBeGreaterThanOrEqual(1);
    expect(
      sumOf(text, "petbooks_outbox_publish_failures_total", { reason: "database_error" }),
    ).toBeGreaterThan(0);
    await expectPromtoolClean(text);

    await db.unsafe(
      "drop trigger petbooks_test_stall on outbox; drop function petbooks_test_stall()",
    );
    await poll("the relay to recover", async () => {
      text = await scrape(`${base}/metrics`);
      return (
        sample(text, "petbooks_outbox_pending_events") === 0 &&
        sample(text, "petbooks_outbox_oldest_pending_age_seconds") === 0 &&
        sample(text, "petbooks_outbox_stalled") === 0
      );
    });
    expect(sample(text, "petbooks_outbox_events_published_total")).toBeGreaterThanOrEqual(1);
  });
});
