/**
 * Database spans with the SDK's in-memory exporter, on the embedded database (on PostgreSQL when
 * DATABASE_URL is set): a client span per statement, child of the span running, transactions
 * included, the statement's text without its values; and nothing wrapped while tracing is off.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { eq, sql } from "drizzle-orm";
import { type Database, openDatabase } from "../db/client.ts";
import { textQuery } from "../db/text-query.ts";
import { silentLogger } from "../logger.ts";
import { pets } from "../pets/pets.table.ts";
import { createTestDatabase, testSnapshot } from "../testing/database.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { isTracedClient, tracePglite, tracePostgres } from "./db-tracing.ts";
import { setTraceparentSource } from "./event-traces.ts";
import { type Tracing, tracingFromEnv } from "./tracing.ts";

const TEST_TIMEOUT_MS = 30_000;
const onPostgres = Boolean(process.env.DATABASE_URL);

const exporter = new InMemorySpanExporter();
const tracing = tracingFromEnv({}, { serviceName: "petbooks-test", exporter }) as Tracing;

/** The test database opened twice: with tracing and without, same data. */
let traced: Database;
let untraced: Database;
let closeAll: () => Promise<void>;

beforeAll(async () => {
  if (onPostgres) {
    const base = await createTestDatabase();
    traced = await openDatabase({ databaseUrl: base.url, poolSize: 2, tracing }, silentLogger);
    untraced = base;
    closeAll = async () => {
      await traced.close();
      await base.close();
    };
  } else {
    // PGlite in memory: one database per handle, both from the migrated snapshot.
    const snapshot = await testSnapshot();
    traced = await openDatabase({ snapshot, tracing }, silentLogger);
    untraced = await openDatabase({ snapshot }, silentLogger);
    closeAll = async () => {
      await traced.close();
      await untraced.close();
    };
  }
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await closeAll?.();
  setTraceparentSource(undefined);
  await tracing.shutdown();
}, SETUP_TIMEOUT_MS);

/** Runs `fn` inside a server span, as a request does; its span and the spans under it. */
async function inRequest(fn: () => Promise<unknown>, expectFailure = false) {
  exporter.reset();
  let failed = false;
  await tracing
    .inSpan("request", SpanKind.SERVER, async () => {
      await fn();
    })
    .catch((err) => {
      if (!expectFailure) throw err;
      failed = true;
    });
  if (expectFailure) expect(failed).toBe(true);
  const spans = exporter.getFinishedSpans();
  const request = spans.find((s) => s.name === "request") as ReadableSpan;
  const statements = spans.filter((s) => s !== request);
  return { request, statements };
}

const SECRET = "s3cret-value-never-in-a-span";

/** Everything a span carries that a reader would see. */
const visible = (span: ReadableSpan) =>
  JSON.stringify([span.name, span.attributes, span.status, span.events]);

describe("tracing on", () => {
  test(
    "a statement inside a span is a client child span with its text and no parameter values",
    async () => {
      const { request, statements } = await inRequest(() =>
        traced.db.select({ id: pets.id }).from(pets).where(eq(pets.name, SECRET)),
      );
      expect(statements).toHaveLength(1);
      const span = statements[0] as ReadableSpan;
      expect(span.name).toBe("SELECT pets");
      expect(span.kind).toBe(SpanKind.CLIENT);
      expect(span.spanContext().traceId).toBe(request.spanContext().traceId);
      expect(span.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
      expect(span.attributes["db.system.name"]).toBe("postgresql");
      expect(span.attributes["db.operation.name"]).toBe("SELECT");
      expect(span.attributes["db.query.text"]).toContain('from "pets" where "pets"."name" = $1');
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(visible(span)).not.toContain(SECRET);
      if (onPostgres) {
        expect(typeof span.attributes["server.address"]).toBe("string");
        expect(typeof span.attributes["server.port"]).toBe("number");
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "statements sent as text straight to the driver (textQuery) have spans too",
    async () => {
      const run = textQuery(traced.db);
      const { request, statements } = await inRequest(async () => {
        expect(await run<{ v: string }>("select $1::text as v", [SECRET])).toEqual([{ v: SECRET }]);
        await run("select 1 as one");
      });
      expect(statements.map((s) => s.attributes["db.query.text"])).toEqual([
        "select $1::text as v",
        "select 1 as one",
      ]);
      for (const span of statements) {
        expect(span.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
        expect(visible(span)).not.toContain(SECRET);
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a failing statement ends its span with ERROR and the error's type, not its message",
    async () => {
      // PostgreSQL's message quotes the value: `invalid input syntax for type integer: "…"`.
      const { statements } = await inRequest(
        () => traced.db.execute(sql`select ${SECRET}::int as n`),
        true,
      );
      expect(statements).toHaveLength(1);
      const span = statements[0] as ReadableSpan;
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
      expect(span.attributes["error.type"]).toBe("22P02");
      expect(span.attributes["db.response.status_code"]).toBe("22P02");
      expect(visible(span)).not.toContain(SECRET);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "statements in a transaction, and in a nested one, are children of the span running",
    async () => {
      const { request, statements } = await inRequest(() =>
        traced.db.transaction(async (tx) => {
          await tx.select({ id: pets.id }).from(pets).limit(1);
          await tx.transaction(async (nested) => {
            await nested.execute(sql`select 2 as two`);
          });
        }),
      );
      const texts = statements.map((s) => s.attributes["db.query.text"]);
      expect(texts).toContain("select 2 as two");
      expect(statements.some((s) => s.name === "SELECT pets")).toBe(true);
      for (const span of statements) {
        expect(span.kind).toBe(SpanKind.CLIENT);
        expect(span.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a write names its table; outside any span a statement has none",
    async () => {
      const id = crypto.randomUUID();
      const { statements } = await inRequest(() =>
        traced.db.insert(pets).values({ id, name: SECRET, age: 3, type: "cat" }),
      );
      expect(statements.map((s) => s.name)).toEqual(["INSERT pets"]);
      expect(statements[0]?.attributes["db.collection.name"]).toBe("pets");
      expect(visible(statements[0] as ReadableSpan)).not.toContain(SECRET);

      exporter.reset();
      await traced.db.delete(pets).where(eq(pets.id, id));
      expect(exporter.getFinishedSpans()).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});

describe("tracing off", () => {
  test(
    "the driver's client is the original, and statements make no spans",
    async () => {
      const clientOf = (database: Database) =>
        (database.db as unknown as { $client: object }).$client;
      const client = clientOf(untraced);
      expect(isTracedClient(client)).toBe(false);
      expect(isTracedClient(clientOf(traced))).toBe(true);
      const unwrapped: object = onPostgres
        ? tracePostgres(client as never, undefined)
        : tracePglite(client as never, undefined);
      expect(unwrapped).toBe(client);
      const { statements } = await inRequest(() =>
        untraced.db.select({ id: pets.id }).from(pets).limit(1),
      );
      expect(statements).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
