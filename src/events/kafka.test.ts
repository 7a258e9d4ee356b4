import { describe, expect, test } from "bun:test";
import { randomUUID } from "node:crypto";
import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Socket, TCPSocketListener } from "bun";
import {
  type Kafka,
  type KafkaConfig,
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  KafkaJSRequestTimeoutError,
  logLevel as KafkaLogLevel,
  type LogEntry,
  type ProducerConfig,
} from "kafkajs";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { capturingLogger } from "../testing/logger.ts";
import { createManualClock } from "./clock.ts";
import { cloudEventHeaders } from "./cloudevents.ts";
import {
  BOOK_CHANGES,
  type BookChange,
  type BookEvent,
  BookEventSchema,
  typeOfChange,
} from "./events.ts";
import { createFakeKafka, protocolError } from "./fake-kafka.ts";
import {
  createKafkaClient,
  createKafkaTransport,
  KafkaConnection,
  kafkaLogCreator,
  parseKafkaBrokers,
  producerFencingError,
  toKafkaMessages,
} from "./kafka.ts";

function bookEvent(change: BookChange, bookId: string, occurredAt = new Date()): BookEvent {
  return create(BookEventSchema, {
    id: randomUUID(),
    type: typeOfChange(change),
    occurredAt: timestampFromDate(occurredAt),
    book: {
      id: bookId,
      title: `Title of ${bookId}`,
      author: "Ada",
      publishedOn: "2020-01-02",
      createdAt: timestampFromDate(new Date("2024-05-06T07:08:09Z")),
      updatedAt: timestampFromDate(occurredAt),
    },
  });
}

describe("toKafkaMessages", () => {
  test.each(BOOK_CHANGES)("%s: key is the book id, value the protobuf event", (change) => {
    const event = bookEvent(change, "book-1", new Date("2025-03-04T05:06:07.089Z"));
    const [message] = toKafkaMessages([event]);
    expect(message?.key).toBe("book-1");
    expect(fromBinary(BookEventSchema, message?.value as Buffer)).toEqual(event);
    expect(message?.headers).toMatchObject({ ce_id: event.id, ce_type: `petbooks.${change}` });
    expect(message?.timestamp).toBe(String(Date.parse("2025-03-04T05:06:07.089Z")));
  });

  test("keeps the order given, across books", () => {
    const events = [
      bookEvent("book.created", "a"),
      bookEvent("book.created", "b"),
      bookEvent("book.updated", "a"),
      bookEvent("book.deleted", "b"),
    ];
    const messages = toKafkaMessages(events);
    expect(messages.map((m) => m.headers?.ce_id)).toEqual(events.map((e) => e.id));
    expect(messages.map((m) => m.key)).toEqual(["a", "b", "a", "b"]);
  });

  test("refuses an event without occurred_at", () => {
    const event = { ...bookEvent("book.created", "a"), occurredAt: undefined };
    expect(() => toKafkaMessages([event])).toThrow("is incomplete");
  });
});

describe("parseKafkaBrokers", () => {
  test.each([
    ["localhost:9092", ["localhost:9092"]],
    [" kafka-1:9092 , kafka-2:9093 ", ["kafka-1:9092", "kafka-2:9093"]],
    ["10.0.0.7:65535", ["10.0.0.7:65535"]],
  ])("%p -> %p", (value, expected) => {
    expect(parseKafkaBrokers(value)).toEqual(expected);
  });

  test.each([
    ["", "entry 1 is empty"],
    ["a:1,,b:2", "entry 2 is empty"],
    ["a:1,", "entry 2 is empty"],
    ["kafka", 'entry 1 "kafka" is not host:port'],
    ["kafka:", 'entry 1 "kafka:" is not host:port'],
    ["kafka:0", "entry 1 has port 0 outside 1-65535"],
    ["kafka:70000", "entry 1 has port 70000 outside 1-65535"],
    ["kafka://host:9092", "is not host:port"],
  ])("rejects %p: %s", (value, problem) => {
    expect(() => parseKafkaBrokers(value)).toThrow(ConfigError);
    expect(() => parseKafkaBrokers(value)).toThrow(problem);
  });

  test("never repeats credentials given by mistake", () => {
    const err = (() => {
      try {
        parseKafkaBrokers("user:hunter2@kafka:9092");
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err?.message).not.toContain("hunter2");
  });
});

describe("kafkaLogCreator", () => {
  const entry = (level: KafkaLogLevel, message: string, extra = {}): LogEntry => ({
    namespace: "BrokerPool",
    level,
    label: KafkaLogLevel[level],
    log: { timestamp: "t", logger: "kafkajs", message, ...extra },
  });

  test.each([
    [KafkaLogLevel.ERROR, "error"],
    [KafkaLogLevel.WARN, "warn"],
    [KafkaLogLevel.INFO, "info"],
    [KafkaLogLevel.DEBUG, "debug"],
  ])("kafkajs level %d becomes %s", (level, expected) => {
    const { logger, lines } = capturingLogger();
    kafkaLogCreator(logger)(KafkaLogLevel.DEBUG)(entry(level, "boom", { broker: "k:9092" }));
    expect(lines).toEqual([
      expect.objectContaining({
        level: expected,
        msg: "boom",
        component: "kafkajs.BrokerPool",
        broker: "k:9092",
      }),
    ]);
  });

  test("drops stacks, kafkajs's own timestamp and anything that looks like a credential", () => {
    const { logger, lines } = capturingLogger();
    const extra = {
      stack: "Error: at x",
      sasl: { password: "p" },
      saslPassword: "p",
      retryCount: 2,
    };
    kafkaLogCreator(logger)(KafkaLogLevel.WARN)(entry(KafkaLogLevel.ERROR, "boom", extra));
    expect(Object.keys(lines[0] ?? {}).sort()).toEqual(
      ["component", "level", "msg", "retryCount", "time"].sort(),
    );
  });

  test("logs the warning caused by bounding the idempotent producer's retries at debug", () => {
    const { logger, lines } = capturingLogger();
    const message = "Limiting retries for the idempotent producer may invalidate EoS guarantees";
    kafkaLogCreator(logger)(KafkaLogLevel.WARN)(entry(KafkaLogLevel.WARN, message));
    expect(lines).toEqual([expect.objectContaining({ level: "debug", msg: message })]);
  });

  // As kafkajs 2.2.4 words them (network/connection.js, cluster/brokerPool.js,
  // producer/sendMessages.js, consumer/index.js).
  test.each([
    ["Connection", "Connection error: connect ECONNREFUSED 10.0.0.7:9092", {}],
    ["Connection", "Connection timeout", {}],
    ["Connection", "Response Produce(key: 0, version: 7)", { error: "Request timed out" }],
    ["BrokerPool", "Failed to connect to seed broker, trying another broker from the list: x", {}],
    ["BrokerPool", "Failed to connect to broker, reconnecting", {}],
    ["Producer", "Failed to send messages: Connection error: connect ECONNREFUSED", {}],
    ["Producer", "The broker received an out of order sequence number", {}],
    ["Consumer", "Crash: KafkaJSNumberOfRetriesExceeded: Connection error", {}],
    ["Consumer", "Restarting the consumer in 5312ms", {}],
  ])(
    "%s error %p, retried by kafkajs or handled by us, is a warning",
    (namespace, message, extra) => {
      const { logger, lines } = capturingLogger();
      kafkaLogCreator(logger)(KafkaLogLevel.WARN)({
        ...entry(KafkaLogLevel.ERROR, message, extra),
        namespace,
      });
      expect(lines).toEqual([expect.objectContaining({ level: "warn", msg: message })]);
    },
  );

  test.each([
    ["ConsumerGroup", "Offset out of range, resetting to default offset"],
    ["Consumer", "Failed to execute listener: boom"],
  ])("%s error %p stays an error", (namespace, message) => {
    const { logger, lines } = capturingLogger();
    kafkaLogCreator(logger)(KafkaLogLevel.WARN)({
      ...entry(KafkaLogLevel.ERROR, message),
      namespace,
    });
    expect(lines).toEqual([expect.objectContaining({ level: "error", msg: message })]);
  });

  test("creating a topic that already exists is normal, not an error", () => {
    const { logger, lines } = capturingLogger();
    kafkaLogCreator(logger)(KafkaLogLevel.WARN)({
      ...entry(KafkaLogLevel.ERROR, "Response CreateTopics(key: 19, version: 3)", {
        error: "Topic creation errors",
        correlationId: 3,
      }),
      namespace: "Connection",
    });
    expect(lines).toEqual([
      expect.objectContaining({
        level: "debug",
        msg: "Response CreateTopics(key: 19, version: 3)",
      }),
    ]);
  });

  test("during an outage each kind of line is logged once per window, then with a count", () => {
    const { logger, lines } = capturingLogger();
    const clock = createManualClock(Date.parse("2026-01-01T00:00:00Z"));
    const log = kafkaLogCreator(logger, { windowMs: 30_000, clock })(KafkaLogLevel.WARN);
    const connectionError = (port: number) => ({
      ...entry(KafkaLogLevel.ERROR, `Connection error: connect ECONNREFUSED 10.0.0.${port}:9092`),
      namespace: "Connection",
    });
    const seedBroker = {
      ...entry(KafkaLogLevel.ERROR, "Failed to connect to seed broker, trying another broker"),
      namespace: "BrokerPool",
    };
    // 20 s of retries, a pair of lines every 200 ms: 100 of each kind.
    for (let i = 0; i < 100; i++) {
      log(connectionError(i % 3));
      log(seedBroker);
      clock.advance(200);
    }
    expect(lines.map((l) => [l.component, l.suppressed])).toEqual([
      ["kafkajs.Connection", undefined],
      ["kafkajs.BrokerPool", undefined],
    ]);
    clock.advance(10_000); // 30 s after the first: the window is over
    log(connectionError(1));
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ component: "kafkajs.Connection", suppressed: 99 });
    log(connectionError(2));
    expect(lines).toHaveLength(3);
  });
});

describe("producerFencingError", () => {
  const sequenceError = () => protocolError("OUT_OF_ORDER_SEQUENCE_NUMBER");
  // kafkajs's retrier wraps a non-retriable error it did not bail with this way (retry/index.js).
  const nonRetriable = (cause: Error) =>
    new (KafkaJSNonRetriableError as unknown as new (e: Error, options: { cause: Error }) => Error)(
      cause,
      { cause },
    );
  const withCode = (type: string, code: number) =>
    new KafkaJSProtocolError(
      Object.assign(new Error(type), { type, code, retriable: false }) as Error,
    );

  test.each([
    [
      "the bare protocol error (kafkajs bails with it)",
      sequenceError(),
      "OUT_OF_ORDER_SEQUENCE_NUMBER",
    ],
    [
      "wrapped as non-retriable, with cause",
      nonRetriable(sequenceError()),
      "OUT_OF_ORDER_SEQUENCE_NUMBER",
    ],
    [
      "wrapped as retries exhausted",
      new KafkaJSNumberOfRetriesExceeded(protocolError("UNKNOWN_PRODUCER_ID"), {
        retryCount: 5,
        retryTime: 100,
      }),
      "UNKNOWN_PRODUCER_ID",
    ],
    ["INVALID_PRODUCER_EPOCH", withCode("INVALID_PRODUCER_EPOCH", 47), "INVALID_PRODUCER_EPOCH"],
    [
      "DUPLICATE_SEQUENCE_NUMBER",
      withCode("DUPLICATE_SEQUENCE_NUMBER", 46),
      "DUPLICATE_SEQUENCE_NUMBER",
    ],
    [
      "an originalError",
      Object.assign(new Error("send failed"), { originalError: withCode("X", 59) }),
      "UNKNOWN_PRODUCER_ID",
    ],
  ])("recognises %s", (_, err, type) => {
    expect(producerFencingError(err)).toBe(type);
  });

  test.each([
    ["a connection error", new KafkaJSConnectionError("Connection error: connect ECONNREFUSED")],
    ["a request timeout", new KafkaJSRequestTimeoutError("Request Produce timed out")],
    ["another broker error", withCode("NOT_ENOUGH_REPLICAS", 19)],
    ["a plain error", new Error("OUT_OF_ORDER_SEQUENCE_NUMBER")],
    ["not an error", "OUT_OF_ORDER_SEQUENCE_NUMBER"],
  ])("leaves %s alone", (_, err) => {
    expect(producerFencingError(err)).toBeUndefined();
  });

  test("a cause that loops does not hang", () => {
    const err = new Error("loop") as Error & { cause?: unknown };
    err.cause = err;
    expect(producerFencingError(err)).toBeUndefined();
  });
});

/** A stand-in for the kafkajs client that records what the transport asks of it. */
function fakeKafka(behaviour: { adminConnect?: () => Promise<void>; send?: () => Promise<void> }) {
  const calls: { what: string; args?: unknown }[] = [];
  const record = (what: string, args?: unknown) => calls.push({ what, args });
  let producerConfig: ProducerConfig | undefined;
  const kafka = {
    producer(config: ProducerConfig) {
      producerConfig = config;
      return {
        connect: async () => record("producer.connect"),
        disconnect: async () => record("producer.disconnect"),
        send: async (args: unknown) => {
          record("producer.send", args);
          await behaviour.send?.();
          return [];
        },
      };
    },
    admin() {
      return {
        connect: async () => {
          record("admin.connect");
          await behaviour.adminConnect?.();
        },
        createTopics: async (args: unknown) => {
          record("admin.createTopics", args);
          return true;
        },
        disconnect: async () => record("admin.disconnect"),
      };
    },
  };
  return {
    kafka: kafka as unknown as Kafka,
    calls,
    names: () => calls.map((c) => c.what),
    producerConfig: () => producerConfig,
  };
}

function fakeTransport(fake: ReturnType<typeof fakeKafka>, startAttempts = 3) {
  return createKafkaTransport({
    brokers: ["kafka-1:9092", "kafka-2:9092"],
    topic: "book-events",
    partitions: 6,
    logger: capturingLogger().logger,
    kafka: fake.kafka,
    startAttempts,
    startDelayMs: 1,
  });
}

describe("Kafka transport against a fake client", () => {
  test("uses an idempotent producer with one request in flight", () => {
    const fake = fakeKafka({});
    expect(fakeTransport(fake).name).toBe("kafka");
    expect(fake.producerConfig()).toMatchObject({ idempotent: true, maxInFlightRequests: 1 });
  });

  test("start creates the topic, waiting for leaders, then connects the producer", async () => {
    const fake = fakeKafka({});
    await fakeTransport(fake).start();
    expect(fake.names()).toEqual([
      "admin.connect",
      "admin.createTopics",
      "producer.connect",
      "admin.disconnect",
    ]);
    expect(fake.calls[1]?.args).toEqual({
      waitForLeaders: true,
      topics: [{ topic: "book-events", numPartitions: 6 }],
    });
  });

  test("start retries until Kafka answers", async () => {
    let failures = 2;
    const fake = fakeKafka({
      adminConnect: async () => {
        if (failures-- > 0) throw new Error("Connection error: connect ECONNREFUSED");
      },
    });
    await fakeTransport(fake, 3).start();
    expect(fake.names().filter((n) => n === "admin.connect")).toHaveLength(3);
    expect(fake.names()).toContain("producer.connect");
  });

  test("start gives up after the attempts, naming the brokers, and disconnects", async () => {
    const cause = new Error("Connection error: connect ECONNREFUSED");
    const fake = fakeKafka({ adminConnect: () => Promise.reject(cause) });
    const err = (await fakeTransport(fake, 2)
      .start()
      .catch((e) => e)) as Error;
    expect(err.message).toBe(
      "cannot reach Kafka at kafka-1:9092,kafka-2:9092: Connection error: connect ECONNREFUSED",
    );
    expect(err.cause).toBe(cause);
    expect(fake.names().filter((n) => n === "admin.connect")).toHaveLength(2);
    expect(fake.names().filter((n) => n === "producer.disconnect")).toHaveLength(2);
    expect(fake.names()).not.toContain("producer.connect");
  });

  test("start does not retry what a retry cannot fix", async () => {
    const fake = fakeKafka({
      adminConnect: () =>
        Promise.reject(new KafkaJSNonRetriableError("SASL PLAIN authentication failed")),
    });
    const err = (await fakeTransport(fake, 5)
      .start()
      .catch((e) => e)) as Error;
    expect(err.message).toStartWith("cannot reach Kafka at kafka-1:9092,kafka-2:9092: ");
    expect(fake.names().filter((n) => n === "admin.connect")).toHaveLength(1);
  });

  test("KafkaConnection waits longer before each attempt, and repeats the whole of it", async () => {
    let failures = 2;
    const fake = fakeKafka({
      adminConnect: async () => {
        if (failures-- > 0) throw new KafkaJSConnectionError("Connection timeout");
      },
    });
    const { logger, lines } = capturingLogger();
    const delays: number[] = [];
    const sleep = async (ms: number) => {
      delays.push(ms);
    };
    const producer = fake.kafka.producer();
    await new KafkaConnection(fake.kafka, "book-events", 6, logger, 3, 100, sleep).connect(
      producer,
    );
    expect(delays).toHaveLength(2);
    expect(delays[0]).toBeWithin(100, 120.001);
    expect(delays[1]).toBeWithin(200, 240.001);
    expect(fake.names()).toEqual([
      "admin.connect",
      "producer.disconnect",
      "admin.disconnect",
      "admin.connect",
      "producer.disconnect",
      "admin.disconnect",
      "admin.connect",
      "admin.createTopics",
      "producer.connect",
      "admin.disconnect",
    ]);
    expect(lines.filter((l) => l.msg === "attempt failed, retrying")).toEqual([
      expect.objectContaining({ operation: "connect to Kafka", attempt: 1, of: 3 }),
      expect.objectContaining({ operation: "connect to Kafka", attempt: 2, of: 3 }),
    ]);
  });

  test("publish sends one batch to the topic, acknowledged by all replicas, in order", async () => {
    const fake = fakeKafka({});
    const transport = fakeTransport(fake);
    await transport.start();
    const events = [
      bookEvent("book.created", "a"),
      bookEvent("book.created", "b"),
      bookEvent("book.updated", "a"),
    ];
    await transport.publish(events);
    const sends = fake.calls.filter((c) => c.what === "producer.send");
    expect(sends).toEqual([
      {
        what: "producer.send",
        args: { topic: "book-events", acks: -1, messages: toKafkaMessages(events) },
      },
    ]);
  });

  test("publish of nothing sends nothing", async () => {
    const fake = fakeKafka({});
    const transport = fakeTransport(fake);
    await transport.start();
    await transport.publish([]);
    expect(fake.names()).not.toContain("producer.send");
  });

  test("publish rejects when Kafka does not acknowledge", async () => {
    const fake = fakeKafka({ send: () => Promise.reject(new Error("NOT_ENOUGH_REPLICAS")) });
    const transport = fakeTransport(fake);
    await transport.start();
    await expect(transport.publish([bookEvent("book.created", "a")])).rejects.toThrow(
      "NOT_ENOUGH_REPLICAS",
    );
  });

  test.each([
    ["before start", async () => {}],
    [
      "after stop",
      async (t: ReturnType<typeof fakeTransport>) => {
        await t.start();
        await t.stop();
      },
    ],
  ])("publish %s rejects without sending", async (_, prepare) => {
    const fake = fakeKafka({});
    const transport = fakeTransport(fake);
    await prepare(transport);
    await expect(transport.publish([bookEvent("book.created", "a")])).rejects.toThrow(
      "Kafka transport is not started",
    );
    expect(fake.names()).not.toContain("producer.send");
  });

  test("stop disconnects the producer once, however often it is called", async () => {
    const fake = fakeKafka({});
    const transport = fakeTransport(fake);
    await transport.start();
    await Promise.all([transport.stop(), transport.stop()]);
    await transport.stop();
    expect(fake.names().filter((n) => n === "producer.disconnect")).toHaveLength(1);
  });

  test("stop before start does nothing", async () => {
    const fake = fakeKafka({});
    await fakeTransport(fake).stop();
    expect(fake.calls).toEqual([]);
  });
});

describe("Kafka transport after a lost acknowledgement", () => {
  const transportOn = (fake: ReturnType<typeof createFakeKafka>) => {
    const { logger, lines } = capturingLogger();
    const transport = createKafkaTransport({
      brokers: ["kafka:9092"],
      topic: "book-events",
      logger,
      kafka: fake.kafka,
      startAttempts: 1,
    });
    return { transport, lines };
  };

  test("a sequence error replaces the producer, and the resent batch gets through", async () => {
    const fake = createFakeKafka({ partitions: 3 });
    const { transport, lines } = transportOn(fake);
    await transport.start();
    const a1 = bookEvent("book.created", "book-a");
    const b1 = bookEvent("book.created", "book-b");
    const a2 = bookEvent("book.updated", "book-a");
    const c1 = bookEvent("book.created", "book-c");
    const a3 = bookEvent("book.updated", "book-a");
    await transport.publish([a1, b1]);

    // The broker stores [a2, c1], its ack is lost, and the outage outlasts kafkajs's retries.
    fake.loseNextAck();
    await expect(transport.publish([a2, c1])).rejects.toThrow(KafkaJSNumberOfRetriesExceeded);
    await expect(transport.publish([a2, c1])).rejects.toThrow("ECONNREFUSED");
    fake.setAvailable(true);

    // Meanwhile a3 was written: the relay's next batch is larger, so the broker cannot take it
    // for a resend, and the old producer's rolled-back sequence is out of order.
    const batch = [a2, c1, a3];
    const refused = await transport.publish(batch).catch((e: Error) => e);
    expect(producerFencingError(refused)).toBe("OUT_OF_ORDER_SEQUENCE_NUMBER");
    expect(transport.stats().producerRecreations).toBe(1);

    // The relay's retry: a new producer id, sequences from 0.
    await transport.publish(batch);
    expect(transport.stats().producerRecreations).toBe(1);

    expect(fake.journal).toEqual([
      "producer#1 connect pid=1000",
      "producer#1 send pid=1000: ok,ok", // a1 and b1, on two partitions
      "producer#1 send pid=1000: ok", // a2 and c1 (one partition) stored, the ack lost
      "producer#1 send: broker unavailable",
      "producer#1 send pid=1000: OUT_OF_ORDER_SEQUENCE_NUMBER",
      "producer#1 disconnect", // before the new one sends anything
      "producer#2 connect pid=1001",
      "producer#2 send pid=1001: ok",
    ]);
    // Every event is there; a consumer dropping repeated ids sees each book's events in order.
    expect(fake.firstDeliveriesByKey()).toEqual(
      new Map([
        ["book-a", [a1.id, a2.id, a3.id]],
        ["book-b", [b1.id]],
        ["book-c", [c1.id]],
      ]),
    );
    expect(lines.filter((l) => l.msg?.toString().startsWith("Kafka producer replaced"))).toEqual([
      expect.objectContaining({
        level: "warn",
        reason: "OUT_OF_ORDER_SEQUENCE_NUMBER",
        producer_recreations: 1,
      }),
    ]);
    await transport.stop();
  });

  test("errors that a new producer would not fix keep the producer", async () => {
    const fake = createFakeKafka({ partitions: 1 });
    const { transport } = transportOn(fake);
    await transport.start();
    fake.setAvailable(false);
    await expect(transport.publish([bookEvent("book.created", "a")])).rejects.toThrow();
    fake.setAvailable(true);
    await transport.publish([bookEvent("book.created", "a")]);
    expect(transport.stats().producerRecreations).toBe(0);
    expect(fake.journal.filter((j) => j.includes("connect pid"))).toEqual([
      "producer#1 connect pid=1000",
    ]);
  });

  test("a new producer that cannot connect yet is connected by the next publish", async () => {
    const fake = createFakeKafka({ partitions: 1 });
    const { transport } = transportOn(fake);
    await transport.start();
    await transport.publish([bookEvent("book.created", "a")]);
    fake.loseNextAck();
    await expect(transport.publish([bookEvent("book.updated", "a")])).rejects.toThrow();
    fake.setAvailable(true);
    await expect(
      transport.publish([bookEvent("book.updated", "a"), bookEvent("book.updated", "a")]),
    ).rejects.toThrow("out of order");
    fake.setAvailable(false);
    await expect(transport.publish([bookEvent("book.updated", "a")])).rejects.toThrow(
      "ECONNREFUSED",
    );
    fake.setAvailable(true);
    await transport.publish([bookEvent("book.updated", "a")]);
    expect(transport.stats().producerRecreations).toBe(1);
    expect(fake.journal.filter((j) => j.includes("connect pid"))).toEqual([
      "producer#1 connect pid=1000",
      "producer#2 connect pid=1001",
    ]);
  });
});

/** Short timeouts and no kafkajs-internal retries: our startup retry is what is under test. */
const FAST: KafkaConfig["retry"] = { retries: 0 };
const FAST_TUNING = { connectionTimeout: 200, requestTimeout: 300, retry: FAST };

/**
 * These talk to real sockets through kafkajs: they must give up rather than hang, which the test
 * timeout checks with room for a busy machine (they take well under a second when idle).
 */
const NO_BROKER_TIMEOUT_MS = 30_000;

const settled = <T>(promise: Promise<T>): Promise<T | Error> => promise.catch((err: Error) => err);

/** A transport over `brokers` that tries twice to start, 5 ms apart. */
const unreachable = (brokers: string[], logger: Logger) =>
  createKafkaTransport({
    brokers,
    topic: "book-events",
    logger,
    kafka: createKafkaClient({ brokers, logger, tuning: FAST_TUNING }),
    startAttempts: 2,
    startDelayMs: 5,
  });

describe("Kafka transport against kafkajs with no broker", () => {
  test(
    "start against a closed port gives up, naming the broker",
    async () => {
      const { logger, lines } = capturingLogger();
      const transport = unreachable(["127.0.0.1:1"], logger); // nothing listens on port 1

      const result = await settled(transport.start());
      expect(result).toBeInstanceOf(Error);
      expect((result as Error).message).toStartWith("cannot reach Kafka at 127.0.0.1:1: ");
      expect((result as Error).message).toContain("ECONNREFUSED");

      // kafkajs's own complaints reach our logger, and our retry logged its one retried attempt
      expect(lines.some((l) => String(l.component).startsWith("kafkajs."))).toBe(true);
      expect(lines.some((l) => "stack" in l)).toBe(false);
      expect(lines.filter((l) => l.msg === "attempt failed, retrying")).toEqual([
        expect.objectContaining({ operation: "connect to Kafka", attempt: 1, of: 2 }),
      ]);

      // Refused before any network: the transport never started.
      await expect(transport.publish([bookEvent("book.created", "a")])).rejects.toThrow(
        "Kafka transport is not started",
      );
      await transport.stop();
      await transport.stop();
    },
    NO_BROKER_TIMEOUT_MS,
  );

  test(
    "start against a broker that accepts connections but never answers gives up",
    async () => {
      const sockets: Socket<unknown>[] = [];
      const silent: TCPSocketListener = Bun.listen({
        hostname: "127.0.0.1",
        port: 0,
        socket: { open: (socket) => void sockets.push(socket), data: () => {} },
      });
      try {
        const brokers = [`127.0.0.1:${silent.port}`];
        const transport = unreachable(brokers, capturingLogger().logger);

        const result = await settled(transport.start());
        expect((result as Error).message).toStartWith(`cannot reach Kafka at ${brokers[0]}: `);
        expect(sockets.length).toBeGreaterThan(0);
        await expect(transport.publish([bookEvent("book.created", "a")])).rejects.toThrow(
          "not started",
        );
      } finally {
        for (const socket of sockets) socket.end();
        silent.stop(true);
      }
    },
    NO_BROKER_TIMEOUT_MS,
  );
});

const realBrokers = process.env.KAFKA_BROKERS;

describe("Kafka round trip", () => {
  test.skipIf(!realBrokers)(
    "kafka round trip (set KAFKA_BROKERS to run against a real broker)",
    async () => {
      const brokers = parseKafkaBrokers(realBrokers ?? "");
      const logger = capturingLogger().logger;
      const topic = `petbooks-test-${randomUUID()}`;
      const transport = createKafkaTransport({ brokers, topic, logger, partitions: 3 });
      const events = [
        bookEvent("book.created", "book-a"),
        bookEvent("book.created", "book-b"),
        bookEvent("book.updated", "book-a"),
        bookEvent("book.deleted", "book-b"),
        bookEvent("book.deleted", "book-a"),
      ];
      const consumer = createKafkaClient({ brokers, logger }).consumer({
        groupId: `petbooks-test-${randomUUID()}`,
      });
      try {
        await transport.start();
        await transport.publish(events.slice(0, 3));
        await transport.publish(events.slice(3));

        const received: { key: string; value: BookEvent; headers: Record<string, string> }[] = [];
        const all = Promise.withResolvers<void>();
        await consumer.connect();
        await consumer.subscribe({ topic, fromBeginning: true });
        await consumer.run({
          eachMessage: async ({ message }) => {
            received.push({
              key: String(message.key),
              value: fromBinary(BookEventSchema, message.value as Buffer),
              headers: Object.fromEntries(
                Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]),
              ),
            });
            if (received.length === events.length) all.resolve();
          },
        });
        await all.promise;

        for (const bookId of ["book-a", "book-b"]) {
          const sent = events.filter((e) => e.book?.id === bookId);
          const got = received.filter((r) => r.key === bookId);
          expect(got.map((r) => r.value)).toEqual(sent);
          expect(got.map((r) => r.headers)).toEqual(sent.map((e) => cloudEventHeaders(e)));
        }
      } finally {
        await consumer.disconnect();
        await transport.stop();
      }
    },
    30_000,
  );
});
