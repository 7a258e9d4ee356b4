/**
 * WatchBooks on two `grpc` replicas over one broker (the fake one: Kafka's group semantics and
 * partitioning by book id) and one database: a client that disconnects anywhere in a relay batch
 * spread over several books and partitions, and resumes on the other replica, gets exactly what
 * it missed, no gap and no duplicate, then goes on live.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createBooksServiceFor } from "../books/books.module.ts";
import type { BooksService } from "../books/books.service.ts";
import { createNoCache } from "../cache/cache.ts";
import { rows } from "../db/rows.ts";
import type { BookEvent } from "../events/events.ts";
import { createFakeKafka, type FakeKafka } from "../events/fake-kafka.ts";
import { createKafkaTransport } from "../events/kafka.ts";
import { outboxReplay } from "../events/outbox.repository.ts";
import { outboxTailSource } from "../events/outbox-tail.ts";
import { createOutboxRelay, type OutboxRelay } from "../events/relay.ts";
import { startWatchFeed, type WatchFeed } from "../events/watch-feed.ts";
import type { WatchBooksRequest } from "../gen/petbooks/v1/books_pb.ts";
import { silentLogger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { until } from "../testing/until.ts";
import { type BookWatch, createBookWatch } from "./book-watch.ts";

const TOPIC = "petbooks.books";
const BROKERS = ["fake:9092"];

let database: TestDatabase;
let fake: FakeKafka;
let transport: ReturnType<typeof createKafkaTransport>;
let relay: OutboxRelay;
let books: BooksService;
const replicas: { feed: WatchFeed; watch: BookWatch }[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  fake = createFakeKafka({ partitions: 3, topicExists: true });
  transport = createKafkaTransport({
    brokers: BROKERS,
    topic: TOPIC,
    logger: silentLogger,
    kafka: fake.kafka,
  });
  await transport.start();
  relay = createOutboxRelay({ db: database.db, transport, logger: silentLogger, batchSize: 500 });
  books = createBooksServiceFor({ db: database.db, cache: createNoCache() });
  for (let i = 0; i < 2; i++) {
    const feed = await startWatchFeed({
      logger: silentLogger,
      source: outboxTailSource(database.db),
      kafka: { brokers: BROKERS, topic: TOPIC, groupId: "petbooks-grpc", client: fake.kafka },
      onFatal: (err) => {
        throw err;
      },
    });
    const watch = createBookWatch({
      live: feed.live,
      replay: outboxReplay(database.db),
      retentionMs: 24 * 3_600_000,
      keepaliveMs: 60_000,
      shutdown: new AbortController().signal,
      logger: silentLogger,
    });
    replicas.push({ feed, watch });
  }
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  for (const replica of replicas) await replica.feed.stop();
  await transport?.stop();
  await database?.close();
}, TEARDOWN_TIMEOUT_MS);

/** A stream on `watch`, read as the test asks. */
function open(watch: BookWatch, request: { bookIds?: string[]; resumeAfterEventId?: string }) {
  const hangUp = new AbortController();
  const stream = watch
    .stream(
      {
        bookIds: request.bookIds ?? [],
        resumeAfterEventId: request.resumeAfterEventId ?? "",
      } as unknown as WatchBooksRequest,
      hangUp.signal,
    )
    [Symbol.asyncIterator]();
  // The first read starts the stream: it listens, then replays.
  let pending: ReturnType<typeof stream.next> | undefined = stream.next();
  return {
    async take(n: number): Promise<string[]> {
      const ids: string[] = [];
      while (ids.length < n) {
        const next = await (pending ?? stream.next());
        pending = undefined;
        if (next.done) throw new Error(`the stream ended after ${ids.length} events`);
        const event = next.value.event as BookEvent | undefined;
        if (event) ids.push(event.id);
      }
      return ids;
    },
    async hangUp() {
      hangUp.abort();
      await pending;
      await stream.return?.();
    },
  };
}

/** The published events' ids (of `bookIds` when given) in publication order. */
async function published(bookIds?: string[]): Promise<string[]> {
  const found = rows<{ event_id: string; aggregate_id: string }>(
    await database.db.execute(
      sql`select event_id, aggregate_id from outbox where published_seq is not null
        order by published_seq`,
    ),
  );
  return found.filter((r) => !bookIds || bookIds.includes(r.aggregate_id)).map((r) => r.event_id);
}

describe("WatchBooks resume on the other replica", () => {
  test("a disconnect anywhere in a multi-book, multi-partition batch: the resumed stream has exactly the rest", async () => {
    // Books whose keys spread over every partition (the partitioner hashes the book id).
    const made = [];
    while (new Set(fake.records().map((r) => r.partition)).size < 3 || made.length < 4) {
      made.push(await books.create({ title: "t", author: "a", published_on: "2001-02-03" }));
      await relay.drain();
    }
    const marker = (await published()).at(-1) as string;
    const [first, second] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    const watcher = open(first.watch, {});
    const filtered = made.filter((_, i) => i % 2 === 0).map((b) => b.id);
    const filteredWatcher = open(first.watch, { bookIds: filtered });
    await until("the condition", () => first.feed.live?.listeners === 2);
    // Watched now, the first replica follows from where publication stands (the marker): the
    // batch is what comes after.
    await first.feed.live?.following();

    // One relay batch: two changes of every book, interleaved, spread over the partitions.
    for (let round = 1; round <= 2; round++) {
      for (const book of made) await books.update(book.id, { title: `round ${round}` });
    }
    const before = new Set(fake.records().map((r) => `${r.partition}:${r.offset}`));
    expect(await relay.runOnce()).toBe(2 * made.length);
    const batch = fake.records().filter((r) => !before.has(`${r.partition}:${r.offset}`));
    expect(new Set(batch.map((r) => r.partition)).size).toBe(3);

    const full = (await published()).slice((await published()).indexOf(marker) + 1);
    const fullFiltered = (await published(filtered)).filter((id) => full.includes(id));
    expect(full).toHaveLength(2 * made.length);
    // The first replica delivers publication order, whatever order the partitions came in.
    const seen = await watcher.take(full.length);
    expect(seen).toEqual(full);
    const seenFiltered = await filteredWatcher.take(fullFiltered.length);
    expect(seenFiltered).toEqual(fullFiltered);
    await watcher.hangUp();
    await filteredWatcher.hangUp();

    // The client disconnected after k events (k = 0: it had the event before the batch), and
    // resumes on the second replica.
    const resumed = [];
    for (let k = 0; k <= full.length; k++) {
      const stream = open(second.watch, { resumeAfterEventId: k === 0 ? marker : seen[k - 1] });
      const rest = await stream.take(full.length - k);
      expect([...seen.slice(0, k), ...rest]).toEqual(full);
      resumed.push(stream);
    }
    for (let k = 0; k <= fullFiltered.length; k++) {
      const stream = open(second.watch, {
        bookIds: filtered,
        resumeAfterEventId: k === 0 ? marker : seenFiltered[k - 1],
      });
      const rest = await stream.take(fullFiltered.length - k);
      expect([...seenFiltered.slice(0, k), ...rest]).toEqual(fullFiltered);
      resumed.push(stream);
    }
    // Then live: the next event is the next one, on every resumed stream (nothing repeated).
    await books.update(filtered[0] as string, { title: "live" });
    await relay.drain();
    const next = (await published()).at(-1) as string;
    for (const stream of resumed) {
      expect(await stream.take(1)).toEqual([next]);
      await stream.hangUp();
    }
  }, 60_000);
});
