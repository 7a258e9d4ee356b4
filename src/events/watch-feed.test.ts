/**
 * The WatchBooks feed over Kafka, on the fake broker (fake-kafka.ts keeps Kafka's group
 * semantics): two `grpc` processes each serve every event to their own watchers, while their
 * logging consumers still share one group and split the events.
 */
import { describe, expect, test } from "bun:test";
import type { WatchBooksRequest } from "../gen/petbooks/v1/books_pb.ts";
import { createBookWatch, type WatchReplaySource } from "../grpc/book-watch.ts";
import { createLogger, silentLogger } from "../logger.ts";
import { decodeRecord } from "./cloudevents.ts";
import type { EventConsumer } from "./consumer.ts";
import { type BookEvent, changeOf } from "./events.ts";
import { createFakeKafka } from "./fake-kafka.ts";
import { createKafkaTransport } from "./kafka.ts";
import { startKafkaConsumer } from "./kafka-consumer.ts";
import { createLiveEvents } from "./live-events.ts";
import { testEvent } from "./test-events.ts";
import { feedGroupId, startWatchFeed } from "./watch-feed.ts";

const TOPIC = "petbooks.books";
const GROUP = "petbooks-grpc";
const BROKERS = ["fake:9092"];
const noReplay: WatchReplaySource = {
  findPosition: async () => undefined,
  eventsAfter: async () => [],
  oldestRetainedAt: async () => undefined,
};
const everything = { bookIds: [], resumeAfterEventId: "" } as unknown as WatchBooksRequest;

async function until(condition: () => boolean) {
  while (!condition()) await Bun.sleep(5);
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
    kafka: { brokers: BROKERS, topic: TOPIC, groupId: GROUP, client: kafka },
    onFatal: (err) => {
      throw err;
    },
  });
  const watch = createBookWatch({
    live: feed.live,
    replay: noReplay,
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
  await until(() => (feed.live?.listeners ?? 0) === 1);
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

/** The publishing side, as `serve` has it, over the fake broker. */
async function startedTransport(kafka: ReturnType<typeof createFakeKafka>["kafka"]) {
  const transport = createKafkaTransport({
    brokers: BROKERS,
    topic: TOPIC,
    logger: silentLogger,
    kafka,
  });
  await transport.start();
  return transport;
}

describe("WatchBooks feed over Kafka", () => {
  test("two grpc processes on one broker each deliver every event to their watchers", async () => {
    const fake = createFakeKafka({ partitions: 3, topicExists: true });
    const transport = await startedTransport(fake.kafka);
    // Before any feed exists: the logging group reads it (from the beginning), no watcher does.
    const before = testEvent("book.created", { title: "before" });
    await transport.publish([before]);

    const processes = [await grpcProcess(fake.kafka, "a"), await grpcProcess(fake.kafka, "b")];
    const first = testEvent("book.created", { title: "one" });
    const bookId = first.book?.id as string;
    const events = [
      first,
      testEvent("book.created", { title: "two" }),
      testEvent("book.updated", { id: bookId, title: "one, again" }),
      testEvent("book.created", { title: "three" }),
      testEvent("book.deleted", { id: bookId, title: "one, again" }),
      testEvent("book.created", { title: "four" }),
    ];
    await transport.publish(events.slice(0, 3));
    await transport.publish(events.slice(3));

    for (const p of processes) await until(() => p.watched.length >= events.length);
    await until(() => processes.flatMap((p) => p.logged).length >= events.length + 1);
    for (const p of processes) {
      // Every event, once; Kafka orders one partition, so one book's events keep their order.
      expect(new Set(p.watched.map((e) => e.id))).toEqual(new Set(events.map((e) => e.id)));
      expect(p.watched).toHaveLength(events.length);
      expect(p.watched.filter((e) => e.book?.id === bookId).map((e) => changeOf(e.type))).toEqual([
        "book.created",
        "book.updated",
        "book.deleted",
      ]);
    }
    // The logging consumers share their group: together they logged each event exactly once.
    const logged = processes.flatMap((p) => p.logged);
    expect(logged.sort()).toEqual([before, ...events].map((e) => e.id).sort());

    const feedGroups = () =>
      [...fake.groups().keys()].filter((g) => g.startsWith(`${GROUP}.watch.`));
    expect(feedGroups()).toHaveLength(2);
    for (const p of processes) await p.stop();
    // Each feed's group is deleted on shutdown; the logging group (and its offsets) stays.
    expect(feedGroups()).toEqual([]);
    expect(fake.groups().get(GROUP)).toBe(0);
    await transport.stop();
  }, 60_000);

  test("a rejoin of the feed's group (session timeout, new partitions) skips no event", async () => {
    const fake = createFakeKafka({ partitions: 1, topicExists: true });
    const transport = await startedTransport(fake.kafka);
    const live = createLiveEvents({ logger: silentLogger });
    const got: string[] = [];
    live.subscribe((e) => got.push(e.id));
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
          await live.handleBatch(messages);
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
      await until(() => got.length === 1);
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
      await until(() => got.length >= 3);
      expect(got).toEqual(events.map((e) => e.id));
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
    const feeds = await Promise.all(
      [0, 1].map(() =>
        startWatchFeed({
          logger: silentLogger,
          kafka: { brokers, topic, groupId: group },
          onFatal: (err) => {
            throw err;
          },
        }),
      ),
    );
    const seen = feeds.map(() => new Set<string>());
    for (const [i, feed] of feeds.entries()) {
      feed.live?.subscribe((e) => {
        seen[i]?.add(e.id);
      });
    }
    try {
      // A new group starts at the log end once it has its partitions; until then a probe per
      // try (the test's timeout bounds the wait).
      for (;;) {
        const probes = [testEvent(), testEvent(), testEvent()];
        await transport.publish(probes);
        await Bun.sleep(1000);
        if (seen.every((ids) => probes.every((p) => ids.has(p.id)))) break;
      }
      const events = Array.from({ length: 10 }, () => testEvent());
      await transport.publish(events);
      await until(() => seen.every((ids) => events.every((e) => ids.has(e.id))));
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
  test("a copy of a recent event (Kafka delivers at least once) reaches listeners once", () => {
    const live = createLiveEvents({ logger: silentLogger });
    const seen: string[] = [];
    live.subscribe((e) => seen.push(e.id));
    const [a, b] = [testEvent(), testEvent()];
    for (const event of [a, b, a, b, a]) live.publish(event);
    expect(seen).toEqual([a.id, b.id]);
  });

  test("remembers only so many ids", () => {
    const live = createLiveEvents({ logger: silentLogger, recentIds: 2 });
    const seen: string[] = [];
    live.subscribe((e) => seen.push(e.id));
    const [a, b, c] = [testEvent(), testEvent(), testEvent()];
    for (const event of [a, b, c, a]) live.publish(event);
    expect(seen).toEqual([a.id, b.id, c.id, a.id]);
  });

  test("a failing listener is logged and the others still get the event", () => {
    const lines: string[] = [];
    const live = createLiveEvents({ logger: createLogger("error", (l) => lines.push(l)) });
    const seen: string[] = [];
    live.subscribe(() => {
      throw new Error("boom");
    });
    live.subscribe((e) => seen.push(e.id));
    const event = testEvent();
    live.publish(event);
    expect(seen).toEqual([event.id]);
    expect(lines[0]).toContain("WatchBooks listener failed");
  });
});
