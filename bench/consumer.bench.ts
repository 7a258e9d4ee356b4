/**
 * Consumer throughput: already-published book events, as kafkajs hands them over (batches of
 * message objects), through the real handler (parse, duplicate check in PostgreSQL, one JSON
 * log line each). Target: 5,000 events/s or more. Run: bun bench/consumer.bench.ts
 * Needs PostgreSQL at 127.0.0.1:5432 (user postgres); makes and drops its own database.
 */
import { cpus } from "node:os";
import postgres from "postgres";
import { openDatabase } from "../src/db/client.ts";
import { migrate } from "../src/db/migrate.ts";
import { createEventConsumer } from "../src/events/consumer.ts";
import type { BookEvent } from "../src/events/events.ts";
import { createLogger, silentLogger } from "../src/logger.ts";

const ADMIN_URL = process.env.BENCH_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const DB_NAME = "petbooks_bench_consumer";
const EVENTS = Number(process.env.BENCH_EVENTS ?? 50_000);
const BATCH = 500; // kafkajs hands over up to a fetch's worth per partition; 500 is typical
const TARGET = 5_000;

function event(i: number): BookEvent {
  return {
    id: Bun.randomUUIDv7(),
    type: i % 3 === 0 ? "book.created" : i % 3 === 1 ? "book.updated" : "book.deleted",
    occurred_at: new Date().toISOString(),
    book: {
      id: Bun.randomUUIDv7(),
      title: `Title ${i}`,
      author: "Author",
      published_on: "2001-02-03",
      created_at: "2026-01-01T00:00:00Z",
      updated_at: "2026-01-01T00:00:00Z",
    },
  };
}

const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
await admin.unsafe(`drop database if exists ${DB_NAME} with (force)`);
await admin.unsafe(`create database ${DB_NAME}`);
const url = new URL(ADMIN_URL);
url.pathname = `/${DB_NAME}`;
const database = await openDatabase({ databaseUrl: url.toString(), poolSize: 4 }, silentLogger);
try {
  await migrate(database.db, silentLogger);
  const messages = Array.from({ length: EVENTS }, (_, i) => ({
    topic: "petbooks.books",
    partition: i % 3,
    offset: String(i),
    value: Buffer.from(JSON.stringify(event(i))),
  }));
  let logBytes = 0;
  // The real logger (JSON.stringify per line); the bytes are counted instead of written.
  const logger = createLogger("info", (line) => {
    logBytes += line.length;
  });
  const consumer = createEventConsumer(database.db, logger);

  const started = performance.now();
  for (let i = 0; i < messages.length; i += BATCH)
    await consumer.handleBatch(messages.slice(i, i + BATCH));
  const seconds = (performance.now() - started) / 1000;

  // Redelivery of everything: all duplicates.
  const dupStarted = performance.now();
  for (let i = 0; i < messages.length; i += BATCH)
    await consumer.handleBatch(messages.slice(i, i + BATCH));
  const dupSeconds = (performance.now() - dupStarted) / 1000;

  const rate = EVENTS / seconds;
  console.log(`machine: ${cpus().length} cores, ${cpus()[0]?.model}, bun ${Bun.version}`);
  console.log(
    `events: ${EVENTS} in batches of ${BATCH}, PostgreSQL duplicate check, ${(logBytes / 1e6).toFixed(1)} MB of log lines`,
  );
  console.log(`new events:       ${rate.toFixed(0)} events/s (${seconds.toFixed(2)} s)`);
  console.log(
    `duplicate events: ${(EVENTS / dupSeconds).toFixed(0)} events/s (${dupSeconds.toFixed(2)} s)`,
  );
  console.log(
    `target >= ${TARGET} events/s: ${rate >= TARGET ? "PASS" : "FAIL"} (${(rate / TARGET).toFixed(2)}x)`,
  );
} finally {
  await database.close();
  await admin.unsafe(`drop database if exists ${DB_NAME} with (force)`);
  await admin.end();
}
