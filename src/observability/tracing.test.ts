/**
 * Traces in-process, with the SDK's in-memory exporter: a span per HTTP request and per RPC,
 * children of the caller's `traceparent`, cache calls as their children, log lines inside them
 * with `trace_id` and `span_id`; and nothing installed while tracing is off.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { Elysia } from "elysia";
import { createMemoryCache } from "../cache/cache.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.ts";
import { InFlight } from "../http/in-flight.ts";
import { requestContext } from "../http/request-context.ts";
import { correlateLogs, createLogger } from "../logger.ts";
import { TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { traceCache } from "./cache-tracing.ts";
import { setTraceparentSource } from "./event-traces.ts";
import { grpcTracingInterceptor } from "./grpc-tracing.ts";
import { httpTracing } from "./http-tracing.ts";
import { samplerFromEnv, type Tracing, tracingFromEnv } from "./tracing.ts";
import { tracingWanted } from "./tracing-config.ts";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;

const exporter = new InMemorySpanExporter();
const tracing = tracingFromEnv({}, { serviceName: "petbooks-test", exporter }) as Tracing;

afterAll(async () => {
  correlateLogs(undefined);
  setTraceparentSource(undefined);
  await tracing.shutdown();
}, TEARDOWN_TIMEOUT_MS);

const spanNamed = (name: string): ReadableSpan => {
  const span = exporter.getFinishedSpans().find((s) => s.name === name);
  if (!span)
    throw new Error(`no span ${name} in ${exporter.getFinishedSpans().map((s) => s.name)}`);
  return span;
};

describe("HTTP", () => {
  test("a server span per request, child of the caller's traceparent, with cache spans and log ids", async () => {
    exporter.reset();
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger("info", (line) => lines.push(JSON.parse(line)));
    correlateLogs(() => tracing.logFields());
    const cache = traceCache(createMemoryCache(60), tracing);
    const app = new Elysia({ normalize: false })
      // In createApp's order: the tracing's wrap outside the request context's.
      .use(requestContext({ logger, inFlight: new InFlight(), maxBodyBytes: () => 1024 }))
      .use(httpTracing(tracing))
      .get("/books/:id", async ({ params }) => {
        await cache.read(`book:${params.id}`, "");
        logger.info("inside the handler");
        return { id: params.id };
      });
    const res = await app.handle(
      new Request(`http://localhost/books/${crypto.randomUUID()}`, {
        headers: { traceparent: TRACEPARENT },
      }),
    );
    expect(res.status).toBe(200);
    await res.text();

    const server = spanNamed("GET /books/:id");
    expect(server.kind).toBe(SpanKind.SERVER);
    expect(server.spanContext().traceId).toBe(TRACE_ID);
    expect(server.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(server.attributes["http.route"]).toBe("/books/:id");
    expect(server.attributes["http.response.status_code"]).toBe(200);
    const read = spanNamed("cache read");
    expect(read.kind).toBe(SpanKind.CLIENT);
    expect(read.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
    expect(read.attributes["petbooks.cache"]).toBe("book");

    const ids = { trace_id: TRACE_ID, span_id: server.spanContext().spanId };
    expect(lines.find((l) => l.msg === "inside the handler")).toMatchObject(ids);
    // The access log line is written once the answer is made, still inside the request's trace.
    expect(lines.find((l) => l.msg === "request")).toMatchObject(ids);
    correlateLogs(undefined);
  });

  test("without a traceparent a request starts its own trace; a 5xx marks the span as failed", async () => {
    exporter.reset();
    const app = new Elysia({ normalize: false })
      .use(httpTracing(tracing))
      .get("/boom", ({ set }) => {
        set.status = 503;
        return "down";
      });
    await (await app.handle(new Request("http://localhost/boom"))).text();
    const span = spanNamed("GET /boom");
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
  });

  test("an unmatched path keeps the method as the span name, never the raw path", async () => {
    exporter.reset();
    const app = new Elysia().use(httpTracing(tracing)).get("/x", () => "x");
    await (await app.handle(new Request("http://localhost/no/such/thing"))).text();
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(["GET"]);
  });
});

describe("gRPC", () => {
  test("a server span per call, child of the caller's traceparent, with the status", async () => {
    exporter.reset();
    const transport = createRouterTransport(
      (router) =>
        router.service(Health, {
          check(req) {
            if (req.service === "missing") throw new ConnectError("no", Code.NotFound);
            if (req.service === "broken") throw new ConnectError("bug", Code.Internal);
            return { status: HealthCheckResponse_ServingStatus.SERVING };
          },
        }),
      { router: { interceptors: [grpcTracingInterceptor(tracing)] } },
    );
    const client = createClient(Health, transport);
    await client.check({}, { headers: { traceparent: TRACEPARENT } });
    await expect(client.check({ service: "missing" })).rejects.toThrow();
    await expect(client.check({ service: "broken" })).rejects.toThrow();
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(Array(3).fill("grpc.health.v1.Health/Check"));
    const [ok, missing, broken] = spans as [ReadableSpan, ReadableSpan, ReadableSpan];
    expect(ok.spanContext().traceId).toBe(TRACE_ID);
    expect(ok.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(ok.attributes["rpc.grpc.status_code"]).toBe(0);
    // NOT_FOUND is the caller's business; INTERNAL is ours.
    expect(missing.status.code).toBe(SpanStatusCode.UNSET);
    expect(broken.status.code).toBe(SpanStatusCode.ERROR);
    expect(broken.attributes["rpc.grpc.status"]).toBe("Internal");
  });
});

describe("off by default", () => {
  test("no OTLP variable: no tracing, no hooks, no log fields", async () => {
    expect(tracingWanted({})).toBe(false);
    expect(tracingFromEnv({}, { serviceName: "x" })).toBeUndefined();
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toBe(true);
    expect(
      tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }),
    ).toBe(false);
    expect(
      tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_EXPORTER: "none" }),
    ).toBe(false);
    // Elysia keeps a plugin's hooks here (protected in its types).
    const plugin = httpTracing(undefined) as unknown as {
      extender: { higherOrderFunctions: unknown[] };
      event: { transform?: unknown[] };
    };
    expect(plugin.extender.higherOrderFunctions).toHaveLength(0);
    expect(plugin.event.transform ?? []).toHaveLength(0);
    const cache = createMemoryCache(60);
    expect(traceCache(cache, undefined)).toBe(cache);
    const lines: string[] = [];
    createLogger("info", (line) => lines.push(line)).info("plain");
    expect(lines[0]).not.toContain("trace_id");
  });

  test("OTEL_TRACES_SAMPLER", () => {
    expect(samplerFromEnv({}).toString()).toStartWith("ParentBased{root=AlwaysOnSampler");
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: "always_off" }).toString()).toBe(
      "AlwaysOffSampler",
    );
    expect(
      samplerFromEnv({
        OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG: "0.25",
      }).toString(),
    ).toContain("TraceIdRatioBased{0.25}");
  });
});
