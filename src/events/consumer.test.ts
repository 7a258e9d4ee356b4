import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { EachBatchPayload, Kafka, KafkaMessage } from "kafkajs";
import type { Logger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { capturingLogger } from "../testing/logger.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { toKafkaMessage } from "./cloudevents.ts";
import { createEventConsumer } from "./consumer.ts";
import { type BookChange, type BookEvent, type BookEventJson, fromEventJson } from "./events.ts";
import {
  CONSUMER_TIMING,
  type KafkaConsumerOptions,
  startKafkaConsumer,
} from "./kafka-consumer.ts";
import { testEventJson } from "./test-events.ts";

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
}, SETUP_TIMEOUT_MS);
afterAll(() => database?.close(), SETUP_TIMEOUT_MS);

function bookEvent(type: BookChange = "book.created", title = "Dune"): BookEventJson {
  return testEventJson(type, { title, author: "Frank Herbert", published_on: "1965-08-01" });
}

/** A message as kafkajs hands it to eachBatch (record batch format, Kafka 0.11+). */
function kafkaMessage(
  value: string | Buffer | null,
  offset: number,
  headers: Record<string, string> = {},
): KafkaMessage {
  return {
    key: Buffer.from("key"),
    value: value === null ? null : Buffer.from(value),
    timestamp: String(Date.now()),
    attributes: 0,
    offset: String(offset),
    // kafkajs hands header values over as Buffers.
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Buffer.from(v)])),
  };
}

/** The record petbooks publishes for `event`: binary protobuf with CloudEvents headers. */
function protobufMessage(event: BookEventJson, offset: number): KafkaMessage {
  const decoded = fromEventJson(event);
  if (typeof decoded === "string") throw new Error(decoded);
  const { value, headers } = toKafkaMessage(decoded);
  return kafkaMessage(value as Buffer, offset, headers as Record<string, string>);
}

/** The record versions before the protobuf contract published: JSON, two plain headers. */
function legacyMessage(event: BookEventJson, offset: number): KafkaMessage {
  return kafkaMessage(JSON.stringify(event), offset, {
    "event-id": event.id,
    "event-type": event.type,
  });
}

const asIncoming = (messages: KafkaMessage[], partition = 0) =>
  messages.map((m) => ({
    topic: "petbooks.books",
    partition,
    offset: m.offset,
    value: m.value,
    headers: m.headers,
  }));

describe("book event consumer", () => {
  test.each(["book.created", "book.updated", "book.deleted"] as const)(
    "logs a %s as one structured line",
    async (type) => {
      const { lines, logger } = capturingLogger();
      const event = bookEvent(type, "The Left Hand of Darkness");
      await createEventConsumer(database.db, logger).handleBatch(
        asIncoming([protobufMessage(event, 41)], 2),
      );
      expect(lines).toEqual([
        expect.objectContaining({
          level: "info",
          msg: "book event",
          format: "protobuf",
          event_type: type,
          event_id: event.id,
          book_id: event.book.id,
          title: "The Left Hand of Darkness",
          topic: "petbooks.books",
          partition: 2,
          offset: "41",
        }),
      ]);
    },
  );

  test("a redelivered event is logged as a duplicate, within a batch and across batches", async () => {
    const { lines, logger } = capturingLogger();
    const consumer = createEventConsumer(database.db, logger);
    const event = bookEvent();
    await consumer.handleBatch(asIncoming([protobufMessage(event, 1), protobufMessage(event, 2)]));
    await consumer.handleBatch(asIncoming([protobufMessage(event, 1)]));
    // A restarted process (a new consumer object) still knows it.
    await createEventConsumer(database.db, logger).handleBatch(
      asIncoming([protobufMessage(event, 1)]),
    );
    expect(lines.map((l) => l.msg)).toEqual([
      "book event",
      "duplicate book event ignored",
      "duplicate book event ignored",
      "duplicate book event ignored",
    ]);
  });

  test.each([
    ["not JSON", "{not json"],
    ["an empty message", null],
    ["JSON that is not a book event", JSON.stringify({ hello: "world" })],
    ["an unknown event type", JSON.stringify({ ...bookEvent(), type: "book.burned" })],
  ])("skips %s with an error line, and goes on", async (_, value) => {
    const { lines, logger } = capturingLogger();
    const good = bookEvent();
    await createEventConsumer(database.db, logger).handleBatch(
      asIncoming([kafkaMessage(value, 7), protobufMessage(good, 8)]),
    );
    expect(lines[0]).toMatchObject({ level: "error", msg: "malformed event skipped", offset: "7" });
    expect(lines[1]).toMatchObject({ msg: "book event", event_id: good.id, offset: "8" });
  });

  test("keeps the order of the batch", async () => {
    const { lines, logger } = capturingLogger();
    const events = ["a", "b", "c", "d"].map((t) => bookEvent("book.updated", t));
    await createEventConsumer(database.db, logger).handleBatch(
      asIncoming(events.map((e, i) => protobufMessage(e, i))),
    );
    expect(lines.map((l) => l.title)).toEqual(["a", "b", "c", "d"]);
  });
});

describe("rolling upgrade: records of older versions", () => {
  test("an old JSON record and a protobuf record are each consumed exactly once", async () => {
    const { lines, logger } = capturingLogger();
    const consumer = createEventConsumer(database.db, logger);
    const old = bookEvent("book.created", "Written by an older serve");
    const current = bookEvent("book.updated", "Written by this version");
    await consumer.handleBatch(asIncoming([legacyMessage(old, 1), protobufMessage(current, 2)]));
    // Kafka redelivers both (a rebalance before the commit): neither is handled twice.
    await consumer.handleBatch(asIncoming([legacyMessage(old, 1), protobufMessage(current, 2)]));
    const events = lines.filter((l) => l.msg === "book event");
    expect(events).toEqual([
      expect.objectContaining({
        event_id: old.id,
        format: "legacy-json",
        event_type: "book.created",
      }),
      expect.objectContaining({
        event_id: current.id,
        format: "protobuf",
        event_type: "book.updated",
      }),
    ]);
    expect(lines.filter((l) => l.msg === "duplicate book event ignored")).toHaveLength(2);
    // How many old records went through, so an operator sees when the last one did.
    expect(lines.filter((l) => l.msg === "legacy JSON book events consumed")).toEqual([
      expect.objectContaining({ count: 1, total: 1 }),
      // Records seen in the batch; the total counts events, each once.
      expect.objectContaining({ count: 1, total: 1 }),
    ]);
    expect(consumer.stats()).toMatchObject({ legacyJson: 1, protobuf: 1, duplicates: 2 });
  });

  test("an old JSON record and the same event as protobuf count as one event", async () => {
    // The outbox row an old relay published as JSON, and a new relay again as protobuf.
    const { lines, logger } = capturingLogger();
    const event = bookEvent();
    await createEventConsumer(database.db, logger).handleBatch(
      asIncoming([legacyMessage(event, 1), protobufMessage(event, 2)]),
    );
    expect(lines.filter((l) => l.msg === "book event")).toHaveLength(1);
    expect(lines.filter((l) => l.msg === "duplicate book event ignored")).toHaveLength(1);
  });

  test.each([
    [
      "another CloudEvents version",
      { ce_specversion: "0.3" },
      "unsupported CloudEvents specversion 0.3",
    ],
    [
      "a content type it does not read",
      { "content-type": "application/avro" },
      "unsupported content type application/avro",
    ],
    [
      "a ce_id that is not the event's",
      { ce_id: "0199a7c6-1234-7abc-8def-0123456789ab" },
      "ce_id is not the event's id",
    ],
  ])("skips a record with %s, logged with the reason", async (_, override, reason) => {
    const { lines, logger } = capturingLogger();
    const message = protobufMessage(bookEvent(), 5);
    for (const [name, value] of Object.entries(override)) {
      (message.headers as Record<string, Buffer>)[name] = Buffer.from(value);
    }
    const consumer = createEventConsumer(database.db, logger);
    await consumer.handleBatch(asIncoming([message]));
    expect(lines).toEqual([
      expect.objectContaining({
        level: "error",
        msg: "malformed event skipped",
        reason,
        offset: "5",
      }),
    ]);
    expect(consumer.stats().skipped).toBe(1);
  });

  test("skips bytes that are no protobuf BookEvent under protobuf headers", async () => {
    const { lines, logger } = capturingLogger();
    const message = protobufMessage(bookEvent(), 6);
    message.value = Buffer.from([0xff, 0xff, 0xff]);
    await createEventConsumer(database.db, logger).handleBatch(asIncoming([message]));
    expect(lines[0]).toMatchObject({
      msg: "malformed event skipped",
      reason: "not a protobuf BookEvent",
    });
  });
});

/** A stand-in for kafkajs's client that records what the consumer wrapper does. */
function fakeKafka() {
  const listeners = new Map<string, (e: { payload: { error: Error; restart: boolean } }) => void>();
  const calls: string[] = [];
  let eachBatch: ((payload: EachBatchPayload) => Promise<void>) | undefined;
  let autoCommit = true;
  const consumer = {
    events: { CRASH: "consumer.crash" },
    on: (event: string, listener: (e: { payload: { error: Error; restart: boolean } }) => void) =>
      listeners.set(event, listener),
    connect: async () => calls.push("connect"),
    subscribe: async (s: { topic: string; fromBeginning: boolean }) =>
      calls.push(`subscribe ${s.topic} ${s.fromBeginning}`),
    run: async (config: {
      eachBatch: (payload: EachBatchPayload) => Promise<void>;
      autoCommit?: boolean;
    }) => {
      eachBatch = config.eachBatch;
      autoCommit = config.autoCommit ?? true;
    },
    disconnect: async () => calls.push("disconnect"),
  };
  const configs: Record<string, unknown>[] = [];
  const kafka = {
    consumer: (c: { groupId: string }) => {
      calls.push(`group ${c.groupId}`);
      configs.push(c);
      return consumer;
    },
  } as unknown as Kafka;
  return {
    kafka,
    calls,
    configs,
    crash: (restart: boolean) =>
      listeners.get("consumer.crash")?.({ payload: { error: new Error("gave up"), restart } }),
    /**
     * One batch, as kafkajs' runner hands it: with autoCommit, what eachBatch resolved is committed
     * when it returns or throws (runner.js autoCommitOffsets); commitOffsetsIfNecessary() alone
     * commits nothing without an autoCommitInterval or autoCommitThreshold.
     */
    async deliver(messages: KafkaMessage[]) {
      const resolved: string[] = [];
      const commit = () => {
        if (autoCommit && resolved.length > 0) calls.push(`commit ${resolved.at(-1)}`);
      };
      try {
        await eachBatch?.({
          batch: { topic: "petbooks.books", partition: 0, messages },
          resolveOffset: (offset: string) => resolved.push(offset),
          heartbeat: async () => {},
          commitOffsetsIfNecessary: async () => {},
          isRunning: () => true,
        } as unknown as EachBatchPayload);
      } finally {
        commit();
      }
      return resolved;
    },
  };
}

/** The wrapper on a fake client, handling into this file's database unless `options` say otherwise. */
function startOnFake(
  fake: ReturnType<typeof fakeKafka>,
  logger: Logger,
  options: Partial<KafkaConsumerOptions> = {},
) {
  return startKafkaConsumer({
    brokers: ["127.0.0.1:9092"],
    topic: "t",
    groupId: "g",
    handler: createEventConsumer(database.db, logger),
    logger,
    onFatal: () => {},
    kafka: fake.kafka,
    ...options,
  });
}

describe("kafka consumer wrapper", () => {
  test("joins the group from the beginning and commits only after handling", async () => {
    const fake = fakeKafka();
    const { lines, logger } = capturingLogger();
    const running = await startOnFake(fake, logger, {
      topic: "petbooks.books",
      groupId: "petbooks-grpc",
    });
    const resolved = await fake.deliver([
      kafkaMessage(JSON.stringify(bookEvent()), 10),
      kafkaMessage("{bad", 11),
    ]);
    expect(resolved).toEqual(["11"]);
    expect(fake.calls).toEqual([
      "group petbooks-grpc",
      "connect",
      "subscribe petbooks.books true",
      "commit 11",
    ]);
    expect(lines.some((l) => l.msg === "book event")).toBe(true);
    await running.stop();
    expect(fake.calls.at(-1)).toBe("disconnect");
  });

  test("a member that dies without leaving loses its partitions after about 10 s", async () => {
    const fake = fakeKafka();
    const { logger } = capturingLogger();
    await startOnFake(fake, logger);
    expect(fake.configs).toEqual([
      { groupId: "g", sessionTimeout: 10_000, heartbeatInterval: 3_000, maxWaitTimeInMs: 3_000 },
    ]);
    // kafkajs refuses a heartbeat interval not below the session timeout (consumer/index.js);
    // a third of it leaves room for two missed heartbeats.
    expect(CONSUMER_TIMING.heartbeatInterval * 3).toBeLessThanOrEqual(
      CONSUMER_TIMING.sessionTimeout,
    );
    // Heartbeats go out between fetches: a fetch may not wait longer than the interval.
    expect(CONSUMER_TIMING.maxWaitTimeInMs).toBeLessThanOrEqual(CONSUMER_TIMING.heartbeatInterval);
  });

  test("a failing handler commits nothing, so kafkajs redelivers", async () => {
    const fake = fakeKafka();
    const { logger } = capturingLogger();
    await startOnFake(fake, logger, {
      handler: { handleBatch: async () => Promise.reject(new Error("db down")) },
    });
    await expect(fake.deliver([kafkaMessage(JSON.stringify(bookEvent()), 3)])).rejects.toThrow(
      "db down",
    );
    expect(fake.calls.filter((c) => c.startsWith("commit"))).toEqual([]);
  });

  test.each([
    [true, 0],
    [false, 1],
  ])("a crash with restart=%p calls onFatal %d time(s)", async (restart, expected) => {
    const fake = fakeKafka();
    const { logger } = capturingLogger();
    let fatal = 0;
    await startOnFake(fake, logger, {
      onFatal: () => {
        fatal += 1;
      },
    });
    fake.crash(restart);
    expect(fatal).toBe(expected);
  });
});

// Real kafkajs against a real broker: only where one is configured.
const brokers = process.env.KAFKA_BROKERS;
describe.skipIf(!brokers)("kafka consumer round trip (set KAFKA_BROKERS to run)", () => {
  test("events published by the transport are logged by the consumer", async () => {
    const { createKafkaTransport } = await import("./kafka.ts");
    const topic = `petbooks-test-${Date.now()}`;
    const { lines, logger } = capturingLogger();
    const transport = createKafkaTransport({
      brokers: (brokers as string).split(","),
      topic,
      logger,
    });
    await transport.start();
    // Kafka orders one partition only: one book's events (one key) must arrive in order; events
    // of different books may arrive in any order on a topic with several partitions.
    const first = bookEvent("book.created", "Dune");
    const sameBook = (type: BookChange, title: string) => ({
      ...bookEvent(type, title),
      book: { ...first.book, title },
    });
    const oneBook = [
      first,
      sameBook("book.updated", "Dune II"),
      sameBook("book.deleted", "Dune II"),
    ];
    const other = bookEvent("book.created", "Emma");
    const events = [oneBook[0], other, oneBook[1], oneBook[2]] as BookEventJson[];
    await transport.publish(events.map((e) => fromEventJson(e) as BookEvent));
    const running = await startKafkaConsumer({
      brokers: (brokers as string).split(","),
      topic,
      groupId: `petbooks-test-${Date.now()}`,
      handler: createEventConsumer(database.db, logger),
      logger,
      onFatal: (err) => {
        throw err;
      },
    });
    const received = () => lines.filter((l) => l.msg === "book event").map((l) => l.event_id);
    // Bounded by the test's timeout, not by a count of polls.
    while (received().length < events.length) await Bun.sleep(100);
    await running.stop();
    await transport.stop();
    expect(new Set(received())).toEqual(new Set(events.map((e) => e.id)));
    expect(received().filter((id) => oneBook.some((e) => e.id === id))).toEqual(
      oneBook.map((e) => e.id),
    );
  }, 60_000);
});
