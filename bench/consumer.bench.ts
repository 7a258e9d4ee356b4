/**
 * Consumer throughput: already-published book events, as kafkajs hands them over (batches of
 * message objects, binary protobuf with CloudEvents headers), through the real handler (decode,
 * duplicate check in PostgreSQL, one JSON log line each), new and then all again as duplicates.
 * Target: 5,000 events/s or more.
 *
 *   bun bench/consumer.bench.ts [--events 50000]
 *
 * Needs PostgreSQL at 127.0.0.1:5432 (or BENCH_POSTGRES_URL); makes and drops its own database.
 */
import { runBench } from "./lib/cleanup.ts";
import { dropDatabase, recreateDatabase } from "./lib/database.ts";
import { loadAverage } from "./lib/machine.ts";
import {
  type BookEventJson,
  createEventConsumer,
  kafkaRecordEncoder,
  migrate,
  openDatabase,
} from "./lib/petbooks.ts";

const DATABASE = "petbooks_bench_consumer";
/** kafkajs hands over up to a fetch's worth per partition; 500 is typical. */
const BATCH = 500;
const TARGET = 5_000;

function event(i: number): BookEventJson {
  const type = (["book.created", "book.updated", "book.deleted"] as const)[i % 3] ?? "book.created";
  const at = "2026-01-01T00:00:00Z";
  const book = { id: Bun.randomUUIDv7(), title: `Title ${i}`, author: "Author" };
  return {
    id: Bun.randomUUIDv7(),
    type,
    occurred_at: new Date().toISOString(),
    book: { ...book, published_on: "2001-02-03", created_at: at, updated_at: at },
  };
}

await runBench({
  script: "bench/consumer.bench.ts",
  options: { events: { int: 50_000, help: "events consumed, new and then again as duplicates" } },
  run: async ({ events }, cleanup) => {
    const url = await recreateDatabase(DATABASE);
    cleanup.defer(() => dropDatabase(DATABASE));
    const database = await openDatabase({ databaseUrl: url, poolSize: 4 });
    cleanup.defer(() => database.close());
    await migrate(database.db);
    const record = await kafkaRecordEncoder();
    const messages = Array.from({ length: events }, (_, i) => ({
      topic: "petbooks.books",
      partition: i % 3,
      offset: String(i),
      // As petbooks publishes them: binary protobuf with CloudEvents headers (docs/events.md).
      ...record(event(i)),
    }));
    let logBytes = 0;
    // The real logger (JSON.stringify per line); the bytes are counted instead of written.
    const consumer = await createEventConsumer(database.db, (line) => {
      logBytes += line.length;
    });
    const pass = async () => {
      const started = performance.now();
      for (let i = 0; i < messages.length; i += BATCH) {
        await consumer.handleBatch(messages.slice(i, i + BATCH));
      }
      return events / ((performance.now() - started) / 1000);
    };
    const fresh = await pass();
    const duplicates = await pass();
    console.log(
      [
        `events: ${events} in batches of ${BATCH}, ${(logBytes / 1e6).toFixed(1)} MB of log lines, load ${loadAverage()}`,
        `new events:       ${fresh.toFixed(0)} events/s`,
        `duplicate events: ${duplicates.toFixed(0)} events/s`,
        `target >= ${TARGET} events/s: ${fresh >= TARGET ? "met" : "MISSED"}`,
      ].join("\n"),
    );
    return fresh >= TARGET ? 0 : 1;
  },
});
