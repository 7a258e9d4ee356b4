/**
 * The WatchBooks feed over Kafka, on the fake broker (fake-kafka.ts keeps Kafka's group
 * semantics): two `grpc` processes each serve every event to their own watchers, in publication
 * order (the outbox tail), however their records arrive, while their logging consumers still
 * share one group and split the events.
 */

import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createBooksServiceFor } from "../books/books.module.ts";
import { createNoCache } from "../cache/cache.ts";
import { rows } from "../db/rows.ts";
import type { WatchBooksRequest } from "../gen/petbooks/v1/books_pb.ts";
import { createBookWatch } from "../grpc/book-watch.ts";
import { createLogger, silentLogger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { until } from "../testing/until.ts";
import { createManualClock } from "./clock.ts";
import { decodeRecord } from "./cloudevents.ts";
import type { EventConsumer, IncomingMessage } from "./consumer.ts";
import { type BookEvent, changeOf, fromEventJson } from "./events.ts";
import { createFakeKafka, type StoredRecord } from "./fake-kafka.ts";
import { createKafkaTransport } from "./kafka.ts";
import { startKafkaConsumer } from "./kafka-consumer.ts";
import { createLiveEvents } from "./live-events.ts";
import { outboxReplay } from "./outbox.repository.ts";
import { createOutboxTail, outboxTailSource } from "./outbox-tail.ts";
import { createOutboxRelay } from "./relay.ts";
import { testEvent } from "./test-events.ts";
import { feedGroupId, startWatchFeed, wakeOnRecords } from "./watch-feed.ts";

const TOPIC = "petbooks.books";
const GROUP = "petbooks-grpc";
const BROKERS = ["fake:9092"];
const everything = { bookIds: [], resumeAfterEventId: "" } as unknown as WatchBooksRequest;

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
}, SETUP_TIMEOUT_MS);
afterAll(() => database?.close(), TEARDOWN_TIMEOUT_MS);
beforeEach(async () => {
  await database.db.execute(sql`delete from outbox`);
}, SETUP_TIMEOUT_MS);

/** The published events' ids in publication order (`published_seq`). */
async function publicationOrder(): Promise<string[]> {
  return rows<{ event_id: string }>(
    await database.db.execute(
      sql`select event_id from outbox where published_seq is not null order by published_seq`,
    ),
  ).map((r) => r.event_id);
}

/** Writes through the books service, published by a relay over the fake broker. */
async function publishingSide(kafka: ReturnType<typeof createFakeKafka>["kafka"]) {
  const transport = createKafkaTransport({
    brokers: BROKERS,
    topic: TOPIC,
    logger: silentLogger,
    kafka,
  });
  await transport.start();
  const relay = createOutboxRelay({ db: database.db, transport, logger: silentLogger });
  const books = createBooksServiceFor({ db: database.db, cache: createNoCache() });
  let n = 0;
  return {
    transport,
    relay,
    books,
    newBook: () =>
      books.create({ title: `Book ${++n}`, author: "Feed", published_on: "2001-02-03" }),
  };
}

/** One `grpc` process: its WatchBooks feed with one watcher, and its logging consumer. */
async function grpcProcess(kafka: ReturnType<typeof createFakeKafka>["kafka"], name: string) {
  const logged: string[] = [];
  const logging: Pick<EventConsumer, "handleBatch"> = {
    async handleBatch(messages) {
      for (const m of messages) logged.push(decodeRecord(m).event?.id ?? "malformed");
    },
  };
  const consumer = await startKafkaConsumer({
    brokers: BROKERS,
    topic: TOPIC,
    groupId: GROUP,
    handler: logging,
    logger: silentLogger,
    onFatal: (err) => {
      throw err;
    },
    kafka,
  });
  const feed = await startWatchFeed({
    logger: silentLogger,
    source: outboxTailSource(database.db),
    kafka: { brokers: BROKERS, topic: TOPIC, groupId: GROUP, client: kafka },
    onFatal: (err) => {
      throw err;
    },
  });
  const watch = createBookWatch({
    live: feed.live,
    replay: outboxReplay(database.db),
    retentionMs: 3_600_000,
    keepaliveMs: 60_000,
    shutdown: new AbortController().signal,
    logger: silentLogger,
  });
  const watched: BookEvent[] = [];
  const hangUp = new AbortController();
  const reading = (async () => {
    for await (const response of watch.stream(everything, hangUp.signal)) {
      if (response.event) watched.push(response.event as BookEvent);
    }
  })();
  await until("the condition", () => (feed.live?.listeners ?? 0) === 1);
  // The watcher follows from where publication stands once the tail has read it (its
  // `following`, which the stream started): events published before that read ends are the
  // past, which a watch without a resume point does not get. Only then is it "from now on".
  await feed.live?.following();
  return {
    name,
    logged,
    watched,
    async stop() {
      hangUp.abort();
      await reading;
      await feed.stop();
      await consumer.stop();
    },
  };
}

/** A record as a consumer's batch hands it over. */
const incoming = (r: StoredRecord): IncomingMessage => ({
  topic: TOPIC,
  partition: r.partition,
  offset: String(r.offset),
  value: r.value,
  headers: r.headers,
});

describe("WatchBooks feed over Kafka", () => {
  test("two grpc processes on one broker each deliver every event to their watchers, in publication order", async () => {
    const fake = createFakeKafka({ partitions: 3, topicExists: true });
    const side = await publishingSide(fake.kafka);
    // Before any feed exists: the logging group reads it (from the beginning), no watcher does.
    await side.newBook();
    await side.relay.drain();
    const [before] = await publicationOrder();

    const processes = [await grpcProcess(fake.kafka, "a"), await grpcProcess(fake.kafka, "b")];
    const first = await side.newBook();
    const bookId = first.id;
    await side.newBook();
    await side.books.update(bookId, { title: "one, again" });
    await side.relay.drain();
    await side.newBook();
    await side.books.delete(bookId);
    await side.newBook();
    await side.relay.drain();
    const events = (await publicationOrder()).slice(1);
    expect(events).toHaveLength(6);

    for (const p of processes)
      await until("the condition", () => p.watched.length >= events.length);
    await until(
      "the condition",
      () => processes.flatMap((p) => p.logged).length >= events.length + 1,
    );
    for (const p of processes) {
      // Every event, once, in publication order: the same sequence on both replicas.
      expect(p.watched.map((e) => e.id)).toEqual(events);
      expect(p.watched.filter((e) => e.book?.id === bookId).map((e) => changeOf(e.type))).toEqual([
        "book.created",
        "book.updated",
        "book.deleted",
      ]);
    }
    // The logging consumers share their group: together they logged each event exactly once.
    const logged = processes.flatMap((p) => p.logged);
    expect(logged.sort()).toEqual([before as string, ...events].sort());

    const feedGroups = () =>
      [...fake.groups().keys()].filter((g) => g.startsWith(`${GROUP}.watch.`));
    expect(feedGroups()).toHaveLength(2);
    for (const p of processes) await p.stop();
    // Each feed's group is deleted on shutdown; the logging group (and its offsets) stays.
    expect(feedGroups()).toEqual([]);
    expect(fake.groups().get(GROUP)).toBe(0);
    await side.transport.stop();
  }, 60_000);

  test("partitions arriving in different orders at two feeds: both hand on the same sequence, publication order", async () => {
    const fake = createFakeKafka({ partitions: 3, topicExists: true });
    const side = await publishingSide(fake.kafka);
    const feeds = ["a", "b"].map(() => {
      const live = createLiveEvents({ logger: silentLogger });
      const clock = createManualClock();
      const tail = createOutboxTail({
        source: outboxTailSource(database.db),
        live,
        logger: silentLogger,
        clock,
      });
      const got: string[] = [];
      live.subscribe((item) => got.push(item.event.id));
      return { tail, clock, got, wake: wakeOnRecords(tail) };
    });
    for (const feed of feeds) {
      await feed.tail.start();
      await feed.clock.sleeping();
    }
    const [a, b] = feeds as [(typeof feeds)[0], (typeof feeds)[0]];
    /** Hands `records` to a feed one by one, each time until its read is done. */
    const deliver = async (feed: typeof a, records: StoredRecord[]) => {
      for (const record of records) {
        await feed.wake.handleBatch([incoming(record)]);
        await feed.clock.sleeping();
      }
    };
    const byPartition = (records: StoredRecord[], order: number[]) =>
      order.flatMap((p) => records.filter((r) => r.partition === p));

    // Three relay batches of several books each: one batch spreads over the partitions.
    // Books whose keys span the partitions (the partitioner hashes the book id).
    const booksMade = [await side.newBook(), await side.newBook(), await side.newBook()];
    await side.relay.drain();
    while (new Set(fake.records().map((r) => r.partition)).size < 3) {
      booksMade.push(await side.newBook());
      await side.relay.drain();
    }
    const deliveredBefore = (await publicationOrder()).length;
    for (const feed of feeds) await deliver(feed, fake.records());
    for (let round = 0; round < 3; round++) {
      for (const [i, book] of booksMade.entries()) {
        await side.books.update(book.id, { title: `round ${round}, book ${i}` });
      }
      // fake.records() lists partition by partition: the batch is what is new in each.
      const before = new Set(fake.records().map((r) => `${r.partition}:${r.offset}`));
      await side.relay.drain();
      const batch = fake.records().filter((r) => !before.has(`${r.partition}:${r.offset}`));
      expect(new Set(batch.map((r) => r.partition)).size).toBe(3);
      // a: partitions 0, 1, 2; b: 2, 1, 0, and b hears of this batch only after a did.
      await deliver(a, byPartition(batch, [0, 1, 2]));
      await deliver(b, byPartition(batch, [2, 1, 0]).reverse());
    }
    const order = await publicationOrder();
    expect(order).toHaveLength(deliveredBefore + 3 * booksMade.length);
    expect(a.got).toEqual(order);
    expect(b.got).toEqual(order);
    for (const feed of feeds) await feed.tail.stop();
    await side.transport.stop();
  }, 60_000);

  test("a copy of a record on the topic (a resend after a lost acknowledgement) reaches no watcher twice", async () => {
    const fake = createFakeKafka({ partitions: 3, topicExists: true });
    const side = await publishingSide(fake.kafka);
    const processes = [await grpcProcess(fake.kafka, "a"), await grpcProcess(fake.kafka, "b")];
    const [x, y] = [await side.newBook(), await side.newBook()];
    await side.books.update(x.id, { title: "x1" });
    await side.books.update(y.id, { title: "y1" });
    await side.relay.drain();
    const events = await publicationOrder();
    for (const p of processes)
      await until("the condition", () => p.watched.length >= events.length);
    // The relay's resend of a batch the broker stored but never acknowledged: the same events
    // again, at new offsets.
    const resent = rows<{ payload: unknown }>(
      await database.db.execute(sql`select payload from outbox order by id`),
    ).map((r) => fromEventJson(r.payload) as BookEvent);
    await side.transport.publish(resent);
    expect(fake.records().length).toBe(2 * events.length);
    // Then one more event: once the watchers have it, the copies before it were read too.
    await side.books.update(x.id, { title: "x2" });
    await side.relay.drain();
    const all = await publicationOrder();
    for (const p of processes) {
      await until("the condition", () => p.watched.length >= all.length);
      expect(p.watched.map((e) => e.id)).toEqual(all);
    }
    for (const p of processes) await p.stop();
    await side.transport.stop();
  }, 60_000);

  test("a rejoin of the feed's group (session timeout, new partitions) skips no event", async () => {
    const fake = createFakeKafka({ partitions: 1, topicExists: true });
    const transport = createKafkaTransport({
      brokers: BROKERS,
      topic: TOPIC,
      logger: silentLogger,
      kafka: fake.kafka,
    });
    await transport.start();
    // What the feed's consumer hands over (it only wakes the outbox tail, which also polls; the
    // group's offsets still must not skip a record, or a wake-up would come only with the poll).
    const got: string[] = [];
    /** Holds the feed inside its next batch, until released. */
    let hold: { reached: () => void; release: Promise<void> } | undefined;
    const groupId = feedGroupId(GROUP);
    const feed = await startKafkaConsumer({
      brokers: BROKERS,
      topic: TOPIC,
      groupId,
      kind: "feed",
      handler: {
        async handleBatch(messages) {
          const held = hold;
          hold = undefined;
          if (held) {
            held.reached();
            await held.release;
          }
          for (const m of messages) got.push(decodeRecord(m).event?.id ?? "malformed");
        },
      },
      logger: silentLogger,
      onFatal: (err) => {
        throw err;
      },
      kafka: fake.kafka,
    });
    try {
      const book = testEvent("book.created", { title: "one" });
      const id = book.book?.id as string;
      const events = [
        book,
        testEvent("book.updated", { id, title: "two" }),
        testEvent("book.updated", { id, title: "three" }),
      ];
      await transport.publish([events[0] as BookEvent]);
      await until("the condition", () => got.length === 1);
      let release = () => {};
      const reached = new Promise<void>((resolve) => {
        hold = { reached: resolve, release: new Promise<void>((r) => (release = r)) };
      });
      await transport.publish([events[1] as BookEvent]);
      await reached;
      // Published while the feed handles the one before; then the group rejoins, which makes
      // kafkajs start over from the committed offsets (from the log end without any).
      await transport.publish([events[2] as BookEvent]);
      fake.rejoin(groupId);
      release();
      await until("the condition", () => new Set(got).size >= 3);
      // Every record, in order; the one in hand at the rejoin may come again (at least once).
      expect([...new Set(got)]).toEqual(events.map((e) => e.id));
    } finally {
      await feed.stop();
      await transport.stop();
    }
  }, 30_000);

  test("the feed's group is this process' own, named after the logging group", () => {
    const a = feedGroupId(GROUP);
    const b = feedGroupId(GROUP);
    expect(a).toStartWith(`${GROUP}.watch.`);
    expect(a).toContain(`.${process.pid}.`);
    expect(a).not.toBe(b);
  });
});

// Real kafkajs against a real broker: only where one is configured.
const realBrokers = process.env.KAFKA_BROKERS;
describe.skipIf(!realBrokers)("WatchBooks feed on a real broker (set KAFKA_BROKERS to run)", () => {
  test("two feeds each get every event published after they joined; stop deletes their groups", async () => {
    const { createKafkaClient, parseKafkaBrokers } = await import("./kafka.ts");
    const brokers = parseKafkaBrokers(realBrokers ?? "");
    const topic = `petbooks-test-${crypto.randomUUID()}`;
    const group = `petbooks-test-${crypto.randomUUID()}`;
    const transport = createKafkaTransport({ brokers, topic, logger: silentLogger, partitions: 3 });
    await transport.start();
    const relay = createOutboxRelay({ db: database.db, transport, logger: silentLogger });
    const books = createBooksServiceFor({ db: database.db, cache: createNoCache() });
    const write = async (n: number) => {
      for (let i = 0; i < n; i++) {
        await books.create({ title: `real ${i}`, author: "Kafka", published_on: "2001-02-03" });
      }
      await relay.drain();
    };
    const feeds = await Promise.all(
      [0, 1].map(() =>
        startWatchFeed({
          logger: silentLogger,
          source: outboxTailSource(database.db),
          kafka: { brokers, topic, groupId: group },
          onFatal: (err) => {
            throw err;
          },
        }),
      ),
    );
    const seen = feeds.map(() => [] as string[]);
    for (const [i, feed] of feeds.entries()) {
      feed.live?.subscribe((item) => {
        seen[i]?.push(item.event.id);
      });
    }
    try {
      await write(10);
      const events = await publicationOrder();
      // Woken by the records (or, until the new groups have their partitions, by the poll).
      await until("the condition", () => seen.every((ids) => ids.length >= events.length));
      for (const ids of seen) expect(ids).toEqual(events);
    } finally {
      for (const feed of feeds) await feed.stop();
      await transport.stop();
    }
    const admin = createKafkaClient({ brokers, logger: silentLogger }).admin();
    await admin.connect();
    try {
      const { groups } = await admin.listGroups();
      expect(groups.filter((g) => g.groupId.startsWith(`${group}.watch.`))).toEqual([]);
    } finally {
      await admin.disconnect();
    }
  }, 120_000);
});

describe("live events", () => {
  test("hands on items in number order; one at or below the last number reaches listeners no more", () => {
    const live = createLiveEvents({ logger: silentLogger });
    const seen: string[] = [];
    live.subscribe((item) => seen.push(item.event.id));
    const [a, b] = [testEvent(), testEvent()];
    const items = [
      { seq: 1, event: a },
      { seq: 2, event: b },
      { seq: 1, event: a },
      { seq: 2, event: b },
    ];
    for (const item of items) live.publish(item);
    expect(seen).toEqual([a.id, b.id]);
    expect(live.lastSeq).toBe(2);
  });

  test("a failing listener is logged and the others still get the event", () => {
    const lines: string[] = [];
    const live = createLiveEvents({ logger: createLogger("error", (l) => lines.push(l)) });
    const seen: string[] = [];
    live.subscribe(() => {
      throw new Error("boom");
    });
    live.subscribe((item) => seen.push(item.event.id));
    const event = testEvent();
    live.publish({ seq: 1, event });
    expect(seen).toEqual([event.id]);
    expect(lines[0]).toContain("WatchBooks listener failed");
  });
});
