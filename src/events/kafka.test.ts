import { describe, expect, test } from "bun:test";
import { randomUUID } from "node:crypto";
import type { Socket, TCPSocketListener } from "bun";
import {
  type Kafka,
  type KafkaConfig,
  logLevel as KafkaLogLevel,
  type LogEntry,
  type ProducerConfig,
} from "kafkajs";
import { ConfigError } from "../errors.ts";
import { createLogger } from "../logger.ts";
import { BOOK_EVENT_TYPES, type BookEvent, type BookEventType } from "./events.ts";
import {
  createKafkaClient,
  createKafkaTransport,
  kafkaLogCreator,
  parseKafkaBrokers,
  toKafkaMessages,
} from "./kafka.ts";

function bookEvent(type: BookEventType, bookId: string, occurredAt = new Date()): BookEvent {
  return {
    id: randomUUID(),
    type,
    occurred_at: occurredAt.toISOString(),
    book: {
      id: bookId,
      title: `Title of ${bookId}`,
      author: "Ada",
      published_on: "2020-01-02",
      created_at: "2024-05-06T07:08:09.000Z",
      updated_at: occurredAt.toISOString(),
    },
  };
}

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("debug", (line) => lines.push(JSON.parse(line)));
  return { logger, lines };
}

describe("toKafkaMessages", () => {
  test.each(BOOK_EVENT_TYPES)("%s: key is the book id, value the whole event", (type) => {
    const event = bookEvent(type, "book-1", new Date("2025-03-04T05:06:07.089Z"));
    const [message] = toKafkaMessages([event]);
    expect(message?.key).toBe("book-1");
    expect(JSON.parse(String(message?.value))).toEqual(event);
    expect(message?.headers).toEqual({ "event-id": event.id, "event-type": type });
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
    expect(messages.map((m) => m.headers?.["event-id"])).toEqual(events.map((e) => e.id));
    expect(messages.map((m) => m.key)).toEqual(["a", "b", "a", "b"]);
  });

  test("refuses an event whose occurred_at is not a date", () => {
    const event = { ...bookEvent("book.created", "a"), occurred_at: "yesterday" };
    expect(() => toKafkaMessages([event])).toThrow("occurred_at is not a date");
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

/** Short timeouts and no kafkajs-internal retries: our startup retry is what is under test. */
const FAST: KafkaConfig["retry"] = { retries: 0 };
const FAST_TUNING = { connectionTimeout: 200, requestTimeout: 300, retry: FAST };

async function timed<T>(promise: Promise<T>): Promise<{ result: T | Error; ms: number }> {
  const started = performance.now();
  const result = await promise.catch((err: Error) => err);
  return { result, ms: performance.now() - started };
}

describe("Kafka transport against kafkajs with no broker", () => {
  test("start against a closed port rejects quickly, naming the broker", async () => {
    const { logger, lines } = capturingLogger();
    const brokers = ["127.0.0.1:1"]; // nothing listens on port 1
    const kafka = createKafkaClient({ brokers, logger, tuning: FAST_TUNING });
    const transport = createKafkaTransport({
      brokers,
      topic: "book-events",
      logger,
      kafka,
      startAttempts: 2,
      startDelayMs: 5,
    });

    const { result, ms } = await timed(transport.start());
    expect(result).toBeInstanceOf(Error);
    expect((result as Error).message).toStartWith("cannot reach Kafka at 127.0.0.1:1: ");
    expect((result as Error).message).toContain("ECONNREFUSED");
    expect(ms).toBeLessThan(2000);

    // kafkajs's own complaints reach our logger, and our retry logged its one retried attempt
    expect(lines.some((l) => String(l.component).startsWith("kafkajs."))).toBe(true);
    expect(lines.some((l) => "stack" in l)).toBe(false);
    expect(lines.filter((l) => l.msg === "attempt failed, retrying")).toEqual([
      expect.objectContaining({ operation: "connect to Kafka", attempt: 1, of: 2 }),
    ]);

    const publish = await timed(transport.publish([bookEvent("book.created", "a")]));
    expect(publish.result).toBeInstanceOf(Error);
    expect(publish.ms).toBeLessThan(100);
    await transport.stop();
    await transport.stop();
  });

  test("start against a broker that accepts connections but never answers times out", async () => {
    const sockets: Socket<unknown>[] = [];
    const silent: TCPSocketListener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: { open: (socket) => void sockets.push(socket), data: () => {} },
    });
    try {
      const brokers = [`127.0.0.1:${silent.port}`];
      const logger = capturingLogger().logger;
      const kafka = createKafkaClient({ brokers, logger, tuning: FAST_TUNING });
      const transport = createKafkaTransport({
        brokers,
        topic: "book-events",
        logger,
        kafka,
        startAttempts: 2,
        startDelayMs: 5,
      });

      const { result, ms } = await timed(transport.start());
      expect((result as Error).message).toStartWith(`cannot reach Kafka at ${brokers[0]}: `);
      expect(ms).toBeLessThan(3000);
      expect(sockets.length).toBeGreaterThan(0);
      await expect(transport.publish([bookEvent("book.created", "a")])).rejects.toThrow(
        "not started",
      );
    } finally {
      for (const socket of sockets) socket.end();
      silent.stop(true);
    }
  });
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
              value: JSON.parse(String(message.value)),
              headers: Object.fromEntries(
                Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]),
              ),
            });
            if (received.length === events.length) all.resolve();
          },
        });
        await all.promise;

        for (const bookId of ["book-a", "book-b"]) {
          const sent = events.filter((e) => e.book.id === bookId);
          const got = received.filter((r) => r.key === bookId);
          expect(got.map((r) => r.value)).toEqual(sent);
          expect(got.map((r) => r.headers)).toEqual(
            sent.map((e) => ({ "event-id": e.id, "event-type": e.type })),
          );
        }
      } finally {
        await consumer.disconnect();
        await transport.stop();
      }
    },
    30_000,
  );
});
