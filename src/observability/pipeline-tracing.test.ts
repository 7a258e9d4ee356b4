/**
 * One trace from `POST /books` to the consumer, in-process with the SDK's in-memory exporter: the
 * request's server span, the relay's producer span linked to it, and the consumer's span a child
 * of the request (the outbox row carried its `traceparent`), whose log line carries the ids.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { createMemoryCache } from "../cache/cache.ts";
import { buildFeatures, openPhotoStorage, startEventConsumer } from "../deps.ts";
import { createInProcessBus, type InProcessBus } from "../events/bus.ts";
import { emptyConsumerStats } from "../events/consumer.ts";
import { createApp } from "../http/app.ts";
import { correlateLogs, createLogger, silentLogger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { rememberEventTraces, setTraceparentSource } from "./event-traces.ts";
import { traceConsumer, traceHeaders, traceTransport } from "./pipeline-tracing.ts";
import { type Tracing, tracingFromEnv } from "./tracing.ts";

const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN = "b7ad6b7169203331";
const API_KEY = "pipeline-tracing-api-key-0123";
const JWT_SECRET = "pipeline-tracing-jwt-secret-0123456789-abcdef";

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let database: TestDatabase;
let dataDir = "";
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  tracing = tracingFromEnv({}, { serviceName: "petbooks-test", exporter }) as Tracing;
  correlateLogs(() => tracing.logFields());
  database = await createTestDatabase();
  dataDir = mkdtempSync(join(tmpdir(), "petbooks-pipeline-tracing-"));
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  correlateLogs(undefined);
  setTraceparentSource(undefined);
  await database?.close();
  await tracing?.shutdown();
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

const only = (name: string): ReadableSpan => {
  const spans = exporter.getFinishedSpans().filter((s) => s.name === name);
  if (spans.length !== 1) {
    throw new Error(
      `${spans.length} spans ${name} in ${exporter.getFinishedSpans().map((s) => s.name)}`,
    );
  }
  return spans[0] as ReadableSpan;
};

describe("a book write's trace", () => {
  test("runs from POST /books through the outbox and the relay to the consumer", async () => {
    const logger = createLogger("info", (line) => lines.push(JSON.parse(line)));
    const bus = traceTransport(createInProcessBus(silentLogger), tracing, "petbooks.books");
    const features = buildFeatures(
      {
        database,
        cache: createMemoryCache(60),
        transport: bus,
        storage: openPhotoStorage(
          { dataDir, publicUrl: "http://petbooks.test", maxPhotoBytes: 1024 },
          silentLogger,
        ),
        tracing,
      },
      { apiKey: API_KEY, jwtSecret: JWT_SECRET, jwtTtlSeconds: 3600, maxPhotoBytes: 1024 },
      silentLogger,
    );
    const consumer = await startEventConsumer({
      database,
      logger,
      bus: bus as InProcessBus,
      onFatal: () => {},
      tracing,
    });
    const app = createApp({ modules: features.modules, logger, database, tracing });
    const post = (path: string, body: unknown, headers: Record<string, string>) =>
      app.handle(
        new Request(`http://localhost${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: typeof body === "string" ? body : JSON.stringify(body),
        }),
      );
    try {
      const credentials = { username: "tracer", password: "correct horse battery staple" };
      expect((await post("/auth/register", credentials, {})).status).toBe(201);
      const tokenRes = await app.handle(
        new Request("http://localhost/auth/token", {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ grant_type: "password", ...credentials }),
        }),
      );
      const { access_token } = (await tokenRes.json()) as { access_token: string };
      exporter.reset();

      const created = await post(
        "/books",
        { title: "Traced", author: "A. Tracer", published_on: "2020-01-01" },
        {
          authorization: `Bearer ${access_token}`,
          traceparent: `00-${TRACE_ID}-${CALLER_SPAN}-01`,
        },
      );
      expect(created.status).toBe(201);
      await features.relay.drain();
      await (bus as InProcessBus).idle();

      const request = only("POST /books");
      expect(request.kind).toBe(SpanKind.SERVER);
      expect(request.spanContext().traceId).toBe(TRACE_ID);
      expect(request.parentSpanContext?.spanId).toBe(CALLER_SPAN);

      const publish = only("publish petbooks.books");
      expect(publish.kind).toBe(SpanKind.PRODUCER);
      expect(publish.links.map((l) => l.context.spanId)).toEqual([request.spanContext().spanId]);

      const processing = only("process in-process");
      expect(processing.kind).toBe(SpanKind.CONSUMER);
      expect(processing.spanContext().traceId).toBe(TRACE_ID);
      expect(processing.parentSpanContext?.spanId).toBe(request.spanContext().spanId);

      const eventLine = lines.find((l) => l.msg === "book event");
      expect(eventLine).toMatchObject({
        trace_id: TRACE_ID,
        span_id: processing.spanContext().spanId,
      });
    } finally {
      await consumer.stop();
      await features.relay.stop();
    }
  }, 60_000);
});

describe("over Kafka", () => {
  test("the record carries the write's traceparent, and the consumer continues its trace", async () => {
    exporter.reset();
    const writer = `00-${TRACE_ID}-${CALLER_SPAN}-01`;
    const eventId = crypto.randomUUID();
    rememberEventTraces([{ traceparent: writer, payload: { id: eventId } }]);
    expect(traceHeaders(tracing)?.({ id: eventId })).toEqual({ traceparent: writer });
    expect(traceHeaders(undefined)).toBeUndefined();

    const handled: unknown[] = [];
    const consumer = traceConsumer(
      {
        handleBatch: async (messages) => {
          handled.push(tracing.logFields());
          expect(messages).toHaveLength(1);
        },
        handleEvent: async () => {},
        stats: emptyConsumerStats,
      },
      tracing,
    );
    const record = { topic: "petbooks.books", partition: 1, value: null };
    await consumer.handleBatch([
      { ...record, offset: "7", headers: { traceparent: Buffer.from(writer) } },
      { ...record, offset: "8" },
    ]);
    const [first, second] = exporter.getFinishedSpans() as [ReadableSpan, ReadableSpan];
    expect(first.name).toBe("process petbooks.books");
    expect(first.spanContext().traceId).toBe(TRACE_ID);
    expect(first.parentSpanContext?.spanId).toBe(CALLER_SPAN);
    expect(first.attributes["messaging.kafka.offset"]).toBe(7);
    // A record without the header (tracing was off at the writer) starts a trace of its own.
    expect(second.spanContext().traceId).not.toBe(TRACE_ID);
    expect(handled).toEqual([
      { trace_id: TRACE_ID, span_id: first.spanContext().spanId },
      { trace_id: second.spanContext().traceId, span_id: second.spanContext().spanId },
    ]);
  });
});
