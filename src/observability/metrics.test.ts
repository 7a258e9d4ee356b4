/**
 * The metrics in-process: labels and values as a request, a call, a relay batch or a cache read
 * leaves them, the `/metrics` route and its token, and (where promtool is installed) that the
 * text passes `promtool check metrics`.
 */
import { describe, expect, test } from "bun:test";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { Elysia } from "elysia";
import type { Consumer } from "kafkajs";
import { createMemoryCache } from "../cache/cache.ts";
import { NotFoundError, TooManyRequestsError } from "../errors.ts";
import { protocolError } from "../events/fake-kafka.ts";
import { PublishTimeoutError } from "../events/relay.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.ts";
import { InFlight } from "../http/in-flight.ts";
import { requestContext } from "../http/request-context.ts";
import { silentLogger } from "../logger.ts";
import { promtoolProblems, sample, sumOf } from "../testing/metrics-text.ts";
import { cacheFailureCounter, cacheName, instrumentCache } from "./cache-metrics.ts";
import { grpcMetricsInterceptor } from "./grpc-metrics.ts";
import { httpObserver, metricsRoutes, UNMATCHED_ROUTE } from "./http-metrics.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import {
  instrumentConsumer,
  kafkaConsumerWatcher,
  type PublishFailureReason,
  publishFailureReason,
  relayMetrics,
} from "./pipeline-metrics.ts";

const TOKEN = "metrics-token-0123456789";

function testApp(metrics: Metrics, token?: string) {
  const inFlight = new InFlight();
  metrics.addInFlight(() => inFlight.count);
  return new Elysia({ normalize: false })
    .use(
      requestContext({
        logger: silentLogger,
        inFlight,
        maxBodyBytes: () => 1024 * 1024,
        observe: httpObserver(metrics),
      }),
    )
    .use(metricsRoutes(metrics, token))
    .get("/pets/:id", ({ params }) => {
      if (params.id === "missing") throw new NotFoundError("No such pet.");
      return { id: params.id };
    })
    .post("/echo", ({ body }) => body)
    .get("/text", () => "hello")
    .get("/limited", () => {
      throw new TooManyRequestsError("Too many attempts.", 60);
    });
}

/** Elysia runs after-response hooks in a setImmediate: the next turns see what they recorded. */

async function call(app: ReturnType<typeof testApp>, path: string, init?: RequestInit) {
  const res = await app.handle(new Request(`http://localhost${path}`, init));
  const body = await res.text();
  return { status: res.status, headers: res.headers, body };
}

async function scrape(metrics: Metrics): Promise<string> {
  return metrics.registry.metrics();
}

describe("HTTP metrics", () => {
  test("a request raises the count of its route template, method and status class", async () => {
    const metrics = createMetrics({ processMetrics: false });
    const app = testApp(metrics);
    await call(app, "/pets/1");
    await call(app, "/pets/2");
    await call(app, "/pets/missing");
    await call(app, "/no/such/path");
    const text = await scrape(metrics);
    const count = (route: string, status: string) =>
      sample(
        text,
        `http_server_request_duration_seconds_count{method="GET",route="${route}",status_class="${status}"}`,
      );
    expect(count("/pets/:id", "2xx")).toBe(2);
    expect(count("/pets/:id", "4xx")).toBe(1);
    expect(count(UNMATCHED_ROUTE, "4xx")).toBe(1);
    // Never a raw path or an id in a label.
    expect(text).not.toContain("/pets/1");
    expect(text).not.toContain("/no/such/path");
  });

  test("request sizes come from Content-Length, response sizes where known", async () => {
    const metrics = createMetrics({ processMetrics: false });
    const app = testApp(metrics);
    const body = JSON.stringify({ a: "x".repeat(100) });
    await call(app, "/echo", {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(body.length) },
      body,
    });
    await call(app, "/text");
    const text = await scrape(metrics);
    expect(sample(text, 'http_server_request_size_bytes_sum{method="POST",route="/echo"}')).toBe(
      body.length,
    );
    expect(sample(text, 'http_server_response_size_bytes_sum{method="GET",route="/text"}')).toBe(5);
  });

  test("401 and 429 answers are counted as auth failures and rate-limit rejections", async () => {
    const metrics = createMetrics({ processMetrics: false });
    const app = testApp(metrics, TOKEN);
    expect((await call(app, "/metrics")).status).toBe(401);
    expect((await call(app, "/limited")).status).toBe(429);
    const { body } = await call(app, "/metrics", {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(sample(body, 'petbooks_auth_failures_total{route="/metrics"}')).toBe(1);
    expect(sample(body, 'petbooks_rate_limit_rejections_total{route="/limited"}')).toBe(1);
  });

  test("/metrics: the text format, behind METRICS_TOKEN when set, compared whole", async () => {
    const metrics = createMetrics({ processMetrics: false });
    const open = testApp(metrics);
    const res = await call(open, "/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    expect(res.body).toContain("petbooks_build_info{");

    const guarded = testApp(createMetrics({ processMetrics: false }), TOKEN);
    const refused = await call(guarded, "/metrics");
    expect(refused.status).toBe(401);
    expect(refused.headers.get("content-type")).toStartWith("application/problem+json");
    expect(refused.headers.get("www-authenticate")).toStartWith("Bearer");
    for (const wrong of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, TOKEN, "Basic abc"]) {
      expect((await call(guarded, "/metrics", { headers: { authorization: wrong } })).status).toBe(
        401,
      );
    }
    const allowed = await call(guarded, "/metrics", {
      headers: { authorization: `bearer ${TOKEN}` },
    });
    expect(allowed.status).toBe(200);
  });

  test("without metrics there is no /metrics route", async () => {
    const app = new Elysia().use(metricsRoutes(undefined, undefined));
    expect((await app.handle(new Request("http://localhost/metrics"))).status).toBe(404);
  });
});

describe("gRPC metrics", () => {
  test("started, handled by code and handling time, by service and method", async () => {
    const metrics = createMetrics({ processMetrics: false });
    let fail = false;
    const transport = createRouterTransport(
      (router) =>
        router.service(Health, {
          check() {
            if (fail) throw new ConnectError("no such service", Code.NotFound);
            return { status: HealthCheckResponse_ServingStatus.SERVING };
          },
        }),
      { router: { interceptors: [grpcMetricsInterceptor(metrics)] } },
    );
    const client = createClient(Health, transport);
    await client.check({});
    fail = true;
    await expect(client.check({})).rejects.toThrow();
    const text = await scrape(metrics);
    const labels = {
      grpc_method: "Check",
      grpc_service: "grpc.health.v1.Health",
      grpc_type: "unary",
    };
    expect(sumOf(text, "grpc_server_started_total", labels)).toBe(2);
    expect(sumOf(text, "grpc_server_handled_total", { ...labels, grpc_code: "OK" })).toBe(1);
    expect(sumOf(text, "grpc_server_handled_total", { ...labels, grpc_code: "NotFound" })).toBe(1);
    expect(sumOf(text, "grpc_server_handling_seconds_count", labels)).toBe(2);
  });
});

describe("outbox relay metrics", () => {
  test("a batch counts its events, size and time; an empty claim counts nothing", async () => {
    const metrics = createMetrics({ processMetrics: false });
    const relay = relayMetrics(metrics);
    await relay?.timeBatch(async () => 3);
    await relay?.timeBatch(async () => 0);
    const text = await scrape(metrics);
    expect(sample(text, "petbooks_outbox_events_published_total")).toBe(3);
    expect(sample(text, "petbooks_outbox_relay_batch_size_count")).toBe(1);
    expect(sample(text, "petbooks_outbox_relay_batch_size_sum")).toBe(3);
    expect(sample(text, "petbooks_outbox_relay_batch_duration_seconds_count")).toBe(1);
  });

  test("a failed attempt is counted by reason and still fails", async () => {
    const metrics = createMetrics({ processMetrics: false });
    const relay = relayMetrics(metrics);
    const sqlError = Object.assign(new Error("injected"), { code: "P0001" });
    await expect(relay?.timeBatch(() => Promise.reject(sqlError))).rejects.toBe(sqlError);
    const text = await scrape(metrics);
    expect(sample(text, 'petbooks_outbox_publish_failures_total{reason="database_error"}')).toBe(1);
  });

  test.each([
    ["producer_fenced", protocolError("OUT_OF_ORDER_SEQUENCE_NUMBER")],
    ["database_unavailable", Object.assign(new Error("refused"), { code: "ECONNREFUSED" })],
    [
      "database_error",
      new Error("wrapped", { cause: Object.assign(new Error("x"), { code: "23505" }) }),
    ],
    ["broker_timeout", Object.assign(new Error("t"), { name: "KafkaJSRequestTimeoutError" })],
    ["broker_timeout", new PublishTimeoutError("kafka", 15_000)],
    [
      "database_unavailable",
      new Error("Failed query", {
        cause: Object.assign(new Error("gone"), { code: "3D000", severity: "FATAL" }),
      }),
    ],
    ["broker_unreachable", Object.assign(new Error("c"), { name: "KafkaJSConnectionError" })],
    ["broker_error", Object.assign(new Error("e"), { name: "KafkaJSProtocolError" })],
    ["other", new Error("something else")],
  ] as [PublishFailureReason, unknown][])("failure reason %s", (reason, err) => {
    expect(publishFailureReason(err)).toBe(reason);
  });

  test("the outbox gauges read the relay's last check at scrape time", async () => {
    const metrics = createMetrics({ processMetrics: false });
    let age: number | null = null;
    metrics.setOutbox({
      health: () => ({
        status: age !== null && age >= 60 ? "stalled" : "ok",
        oldestPendingSeconds: age,
        stallSeconds: 60,
        consecutiveFailures: 2,
        producerRecreations: 1,
      }),
      pending: async () => 7,
    });
    let text = await scrape(metrics);
    expect(sample(text, "petbooks_outbox_oldest_pending_age_seconds")).toBe(0);
    expect(sample(text, "petbooks_outbox_stalled")).toBe(0);
    age = 90;
    text = await scrape(metrics);
    expect(sample(text, "petbooks_outbox_oldest_pending_age_seconds")).toBe(90);
    expect(sample(text, "petbooks_outbox_stall_threshold_seconds")).toBe(60);
    expect(sample(text, "petbooks_outbox_stalled")).toBe(1);
    expect(sample(text, "petbooks_outbox_pending_events")).toBe(7);
    expect(sample(text, "petbooks_outbox_relay_consecutive_failures")).toBe(2);
    expect(sample(text, "petbooks_kafka_producer_recreations_total")).toBe(1);
    // Scraped again, a mirrored counter does not add up.
    text = await scrape(metrics);
    expect(sample(text, "petbooks_kafka_producer_recreations_total")).toBe(1);
  });

  test("a pending count that fails keeps the scrape answering", async () => {
    const metrics = createMetrics({ processMetrics: false });
    metrics.setOutbox({
      health: () => ({
        status: "ok",
        oldestPendingSeconds: null,
        stallSeconds: 60,
        consecutiveFailures: 0,
        producerRecreations: 0,
      }),
      pending: () => Promise.reject(new Error("database down")),
    });
    expect(await scrape(metrics)).toContain("petbooks_outbox_oldest_pending_age_seconds 0");
  });
});

describe("consumer metrics", () => {
  test("lag per partition, rebalances and crashes from kafkajs's instrumentation events", async () => {
    const metrics = createMetrics({ processMetrics: false });
    const listeners = new Map<string, (event: { payload: Record<string, unknown> }) => void>();
    const events = {
      END_BATCH_PROCESS: "consumer.end_batch_process",
      GROUP_JOIN: "consumer.group_join",
      CRASH: "consumer.crash",
    };
    const consumer = {
      events,
      on: (name: string, listener: (event: { payload: Record<string, unknown> }) => void) => {
        listeners.set(name, listener);
        return () => {};
      },
    } as unknown as Consumer;
    kafkaConsumerWatcher(metrics)?.(consumer);
    const emit = (name: string, payload: Record<string, unknown>) =>
      listeners.get(name)?.({ payload });
    emit(events.GROUP_JOIN, {});
    emit(events.END_BATCH_PROCESS, { topic: "petbooks.books", partition: 2, offsetLag: "42" });
    emit(events.END_BATCH_PROCESS, { topic: "petbooks.books", partition: 2, offsetLag: "40" });
    emit(events.CRASH, { restart: true });
    const text = await scrape(metrics);
    expect(sumOf(text, "petbooks_consumer_lag_messages", { partition: "2" })).toBe(40);
    expect(sample(text, "petbooks_consumer_rebalances_total")).toBe(1);
    expect(sample(text, 'petbooks_consumer_crashes_total{restart="true"}')).toBe(1);
  });

  test("events by result come from the consumer's own counts; batches are timed", async () => {
    const metrics = createMetrics({ processMetrics: false });
    const stats = {
      protobuf: 2,
      cloudeventsJson: 0,
      legacyJson: 1,
      inProcess: 0,
      skipped: 1,
      duplicates: 3,
    };
    const consumer = instrumentConsumer(
      { handleBatch: async () => {}, handleEvent: async () => {}, stats: () => stats },
      metrics,
    );
    await consumer.handleBatch([]);
    const text = await scrape(metrics);
    expect(sample(text, 'petbooks_consumer_events_total{result="new"}')).toBe(3);
    expect(sample(text, 'petbooks_consumer_events_total{result="duplicate"}')).toBe(3);
    expect(sample(text, 'petbooks_consumer_events_total{result="malformed"}')).toBe(1);
    expect(sample(text, "petbooks_consumer_batch_duration_seconds_count")).toBe(1);
  });
});

describe("cache metrics", () => {
  test("hits and misses by cache name, without ids", async () => {
    const metrics = createMetrics({ processMetrics: false });
    const cache = instrumentCache(createMemoryCache(60), metrics);
    const id = "01a20a6b-1e77-75e3-930a-f6eae2888855";
    const first = await cache.read(`book:${id}`, "");
    await cache.write(`book:${id}`, "", first.version, "{}");
    await cache.read(`book:${id}`, "");
    await cache.read("books:list", "page-1");
    const text = await scrape(metrics);
    expect(sample(text, 'petbooks_cache_hits_total{cache="book"}')).toBe(1);
    expect(sample(text, 'petbooks_cache_misses_total{cache="book"}')).toBe(1);
    expect(sample(text, 'petbooks_cache_misses_total{cache="books:list"}')).toBe(1);
    expect(text).not.toContain(id);
  });

  test("names and failures", async () => {
    expect(cacheName("book:01a20a6b-1e77-75e3-930a-f6eae2888855")).toBe("book");
    expect(cacheName("books:list")).toBe("books:list");
    const metrics = createMetrics({ processMetrics: false });
    cacheFailureCounter(metrics)?.("read");
    expect(sample(await scrape(metrics), 'petbooks_cache_errors_total{operation="read"}')).toBe(1);
  });
});

describe("the whole text", () => {
  test("has the process metrics and build_info", async () => {
    const text = await scrape(createMetrics());
    for (const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "process_open_fds",
      "nodejs_eventloop_lag_seconds",
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toMatch(/^petbooks_build_info\{version="[^"]+",commit="[^"]+",bun="[^"]+"\} 1$/m);
  });

  test.skipIf(!Bun.which("promtool"))(
    "passes promtool check metrics",
    async () => {
      const metrics = createMetrics();
      await testApp(metrics).handle(new Request("http://localhost/pets/1"));
      expect(await promtoolProblems(await scrape(metrics))).toBeUndefined();
    },
    30_000,
  );
});
