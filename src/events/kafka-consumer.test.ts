import { describe, expect, test } from "bun:test";
import {
  KafkaJSConnectionError,
  KafkaJSDeleteGroupsError,
  KafkaJSError,
  KafkaJSNonRetriableError,
} from "kafkajs";
import { silentLogger } from "../logger.ts";
import { capturingLogger } from "../testing/logger.ts";
import { expectTwoRetries, recordingSleep } from "../testing/sleep.ts";
import { until } from "../testing/until.ts";
import { createManualClock, type ManualClock } from "./clock.ts";
import type { IncomingMessage } from "./consumer.ts";
import { createFakeKafka, type FakeKafka } from "./fake-kafka.ts";
import { createKafkaTransport } from "./kafka.ts";
import {
  KafkaConsumerConnection,
  KafkaGroupDeletion,
  startKafkaConsumer,
} from "./kafka-consumer.ts";
import { databaseDownError, testEvent } from "./test-events.ts";

/** A stand-in for a kafkajs consumer whose connects fail with `errors` in turn. */
function fakeConsumer(errors: Error[]) {
  const calls: string[] = [];
  const consumer = {
    async connect() {
      calls.push("connect");
      const error = errors.shift();
      if (error) throw error;
    },
    async subscribe(s: { topic: string; fromBeginning?: boolean }) {
      calls.push(`subscribe ${s.topic} ${s.fromBeginning}`);
    },
  };
  return { consumer, calls };
}

describe("KafkaConsumerConnection", () => {
  test("tries again while Kafka is out of reach, waiting longer each time", async () => {
    const refused = () => new KafkaJSConnectionError("Connection error: connect ECONNREFUSED");
    const { consumer, calls } = fakeConsumer([refused(), refused()]);
    const { logger, lines } = capturingLogger();
    const { sleep, delays } = recordingSleep();
    await new KafkaConsumerConnection(consumer, logger, sleep).connect("petbooks.books", true);
    expect(calls).toEqual(["connect", "connect", "connect", "subscribe petbooks.books true"]);
    expectTwoRetries({ delays, lines }, "connect the Kafka consumer", 500);
  });

  test("gives up after 5 attempts", async () => {
    const errors = Array.from(
      { length: 6 },
      () => new KafkaJSConnectionError("Connection timeout"),
    );
    const { consumer, calls } = fakeConsumer(errors);
    const { sleep } = recordingSleep();
    const connection = new KafkaConsumerConnection(consumer, capturingLogger().logger, sleep);
    await expect(connection.connect("t", false)).rejects.toThrow("Connection timeout");
    expect(calls).toEqual(Array(5).fill("connect"));
  });

  test("a refusal no retry fixes fails at once", async () => {
    const { consumer, calls } = fakeConsumer([
      new KafkaJSNonRetriableError("SASL PLAIN authentication failed"),
    ]);
    const { sleep, delays } = recordingSleep();
    const connection = new KafkaConsumerConnection(consumer, capturingLogger().logger, sleep);
    await expect(connection.connect("t", false)).rejects.toThrow("SASL");
    expect(calls).toEqual(["connect"]);
    expect(delays).toEqual([]);
  });
});

describe("KafkaGroupDeletion", () => {
  /** kafkajs's answer for one group that the broker refused to delete (admin/index.js). */
  const refusal = (errorCode: number, type: string) =>
    new KafkaJSDeleteGroupsError("Error in DeleteGroups", [
      { groupId: "feed", errorCode, error: new KafkaJSError(type) },
    ]);

  /** A stand-in for the kafkajs admin whose deletions fail with `errors` in turn. */
  function fakeAdmin(errors: Error[]) {
    const deleted: string[][] = [];
    const admin = {
      async deleteGroups(groupIds: string[]) {
        deleted.push(groupIds);
        const error = errors.shift();
        if (error) throw error;
        return groupIds.map((groupId) => ({ groupId, errorCode: 0 }));
      },
    };
    return { admin, deleted };
  }

  test("a group that still has members is tried again", async () => {
    const { admin, deleted } = fakeAdmin([refusal(68, "NON_EMPTY_GROUP")]);
    const { logger, lines } = capturingLogger();
    const { sleep, delays } = recordingSleep();
    await new KafkaGroupDeletion(admin, logger, sleep).delete("feed");
    expect(deleted).toEqual([["feed"], ["feed"]]);
    expect(delays).toHaveLength(1);
    expect(delays[0]).toBeWithin(200, 240.001);
    expect(lines).toEqual([
      expect.objectContaining({
        operation: "delete the WatchBooks feed's consumer group",
        attempt: 1,
        of: 3,
      }),
    ]);
  });

  test("a group that never formed is not tried again", async () => {
    const notFound = refusal(69, "GROUP_ID_NOT_FOUND");
    const { admin, deleted } = fakeAdmin([notFound]);
    const { sleep, delays } = recordingSleep();
    const deletion = new KafkaGroupDeletion(admin, capturingLogger().logger, sleep);
    expect(await deletion.delete("feed").catch((e: unknown) => e)).toBe(notFound);
    expect(deleted).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  test("gives up after 3 attempts", async () => {
    const errors = Array.from({ length: 4 }, () => refusal(68, "NON_EMPTY_GROUP"));
    const { admin, deleted } = fakeAdmin(errors);
    const { sleep } = recordingSleep();
    const deletion = new KafkaGroupDeletion(admin, capturingLogger().logger, sleep);
    await expect(deletion.delete("feed")).rejects.toThrow("Error in DeleteGroups");
    expect(deleted).toHaveLength(3);
  });
});

describe("the consumer while the database is unavailable (fake broker)", () => {
  const TOPIC = "petbooks.books";
  const GROUP = "petbooks-grpc";

  /** A broker of one partition holding two book events. */
  async function brokerWithTwoEvents(): Promise<FakeKafka> {
    const fake = createFakeKafka({ partitions: 1, topicExists: true });
    const transport = createKafkaTransport({
      brokers: ["fake:9092"],
      topic: TOPIC,
      logger: silentLogger,
      kafka: fake.kafka,
    });
    await transport.start();
    await transport.publish([testEvent(), testEvent()]);
    await transport.stop();
    return fake;
  }

  /** A handler whose database is down for its first `failures` batches (Infinity: for good). */
  function handlerFailing(failures: number, fake: FakeKafka) {
    const state = {
      attempts: 0,
      handled: [] as string[],
      heartbeatsBeforeSuccess: 0,
      committedBeforeSuccess: new Map<number, number>(),
    };
    const handler = {
      async handleBatch(messages: IncomingMessage[]) {
        state.attempts += 1;
        if (state.attempts <= failures) throw databaseDownError();
        state.heartbeatsBeforeSuccess = fake.heartbeats();
        state.committedBeforeSuccess = fake.committed(GROUP);
        state.handled.push(...messages.map((m) => String(m.offset)));
      },
    };
    return { state, handler };
  }

  const start = (
    fake: FakeKafka,
    handler: ReturnType<typeof handlerFailing>["handler"],
    clock: ManualClock,
    logger = silentLogger,
  ) =>
    startKafkaConsumer({
      brokers: ["fake:9092"],
      topic: TOPIC,
      groupId: GROUP,
      handler,
      logger,
      onFatal: (err) => {
        throw err;
      },
      kafka: fake.kafka,
      clock,
    });

  /** The consumer's group membership as the broker saw it: joins, leaves, crashes. */
  const membership = (fake: FakeKafka) =>
    fake.journal
      .filter((j) => j.startsWith("consumer#"))
      .map((j) => j.replace(/^consumer#\d+\(.*?\) /, ""));

  test("holds the batch until the database answers: no crash, no rejoin, committed only then", async () => {
    const fake = await brokerWithTwoEvents();
    const clock = createManualClock();
    const { logger, lines } = capturingLogger();
    // More failures than kafkajs's runner retries before it crashes the consumer (5).
    const { state, handler } = handlerFailing(7, fake);
    const running = await start(fake, handler, clock, logger);
    try {
      // Time moves only while the consumer waits; the test's timeout bounds the loop.
      await until(
        "the batch handled",
        () => {
          const pending = clock.pending();
          if (pending.length > 0) clock.advance(Math.min(...pending));
          return state.handled.length > 0;
        },
        { everyMs: 1 },
      );
      await until("the offsets committed", () => fake.committed(GROUP).get(0) === 2);
      expect(membership(fake)).toEqual(["joined"]);
      expect(fake.groups().get(GROUP)).toBe(1);
      expect(state.committedBeforeSuccess).toEqual(new Map());
      expect(state.attempts).toBe(8);
      expect(state.handled).toEqual(["0", "1"]);
      // Waited 200 + 400 + 800 + 1,600 + 3,200 + 6,400 + 10,000 ms, heartbeating meanwhile.
      expect(clock.now()).toBe(22_600);
      expect(state.heartbeatsBeforeSuccess).toBeGreaterThanOrEqual(22);
      // One warning when the wait began, one line when it ended.
      expect(lines.filter((l) => String(l.msg).includes("database"))).toEqual([
        expect.objectContaining({
          level: "warn",
          msg: "database unavailable; holding the event batch until it answers",
          partition: 0,
          offset: "0",
        }),
        expect.objectContaining({
          level: "info",
          msg: "database answers again; event batch handled",
          failed_attempts: 7,
          waited_ms: 22_600,
        }),
      ]);
    } finally {
      await running.stop();
    }
  });

  test("a stop while it waits returns at once and commits nothing; the next member gets the batch", async () => {
    const fake = await brokerWithTwoEvents();
    const clock = createManualClock();
    const down = handlerFailing(Number.POSITIVE_INFINITY, fake);
    const running = await start(fake, down.handler, clock);
    // Waiting for the database, or (without the wait) crashed by kafkajs's runner.
    await until(
      "a wait or a crash",
      () => clock.pending().length > 0 || membership(fake).includes("crashed"),
    );
    expect(membership(fake)).toEqual(["joined"]);
    await running.stop();
    expect(clock.now()).toBe(0); // no wait ran out: the stop cut it short
    expect(down.state.attempts).toBe(1);
    expect(fake.committed(GROUP)).toEqual(new Map());
    expect(membership(fake)).toEqual(["joined", "left"]);

    const up = handlerFailing(0, fake);
    const next = await start(fake, up.handler, createManualClock());
    try {
      await until("the batch handled again", () => fake.committed(GROUP).get(0) === 2);
      expect(up.state.handled).toEqual(["0", "1"]);
    } finally {
      await next.stop();
    }
  });

  test("any other failure is left to kafkajs, as before: it retries, then restarts the consumer", async () => {
    const fake = await brokerWithTwoEvents();
    const clock = createManualClock();
    const { logger, lines } = capturingLogger();
    let attempts = 0;
    const running = await start(
      fake,
      {
        async handleBatch() {
          attempts += 1;
          if (attempts <= 6) throw new Error('relation "consumed_events" does not exist');
        },
      },
      clock,
      logger,
    );
    try {
      await until("the offsets committed", () => fake.committed(GROUP).get(0) === 2);
      expect(attempts).toBe(7);
      expect(clock.requested).toEqual([]);
      expect(membership(fake).filter((m) => !m.startsWith("batch failed"))).toEqual([
        "joined",
        "crashed",
        "left",
        "joined",
      ]);
      expect(lines).toContainEqual(
        expect.objectContaining({
          level: "warn",
          msg: "kafka consumer crashed; kafkajs restarts it",
        }),
      );
    } finally {
      await running.stop();
    }
  });
});
