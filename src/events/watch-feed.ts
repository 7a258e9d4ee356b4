/**
 * This process' live events (WatchBooks): the outbox tail (outbox-tail.ts) reads them in
 * publication order; what wakes it is wherever book events are published: the in-process bus in
 * `dev`, or Kafka through a consumer group of this process alone, so every `grpc` replica hears of
 * every publication (kafka-consumer.ts, `kind: "feed"`). A record's content does not matter
 * beyond its event id (the `ce_id` header), which tells the tail what to wait for.
 */

import { hostname } from "node:os";
import type { Kafka } from "kafkajs";
import type { Logger } from "../logger.ts";
import type { InProcessBus } from "./bus.ts";
import type { Clock } from "./clock.ts";
import { headerText } from "./cloudevents.ts";
import type { IncomingMessage } from "./consumer.ts";
import { startKafkaConsumer } from "./kafka-consumer.ts";
import { createLiveEvents, type LiveEvents } from "./live-events.ts";
import { createOutboxTail, type OutboxTail, type OutboxTailSource } from "./outbox-tail.ts";

export interface WatchFeedOptions {
  logger: Logger;
  /** The published outbox rows (outbox-tail.ts `outboxTailSource`). */
  source: OutboxTailSource;
  bus?: InProcessBus | undefined;
  kafka?: { brokers: string[]; topic: string; groupId: string; client?: Kafka } | undefined;
  /** kafkajs gave up for good: the process should exit non-zero. */
  onFatal: (err: Error) => void;
  /** The tail's timing (outbox-tail.ts); defaults there. */
  tail?: { clock?: Clock; pollMs?: number; retryMs?: number } | undefined;
}

export interface WatchFeed {
  /** Undefined when there is no event source (grpc without KAFKA_BROKERS). */
  live: LiveEvents | undefined;
  stop(): Promise<void>;
}

/**
 * The event id of a Kafka record: CloudEvents `ce_id`, or the `event-id` header of an older
 * version's JSON record. A record without one still wakes the tail.
 */
const eventIdOf = (message: IncomingMessage) =>
  headerText(message.headers, "ce_id") ?? headerText(message.headers, "event-id");

/** The Kafka feed's handler: each batch of records wakes the tail, naming their events. */
export function wakeOnRecords(tail: Pick<OutboxTail, "wake">) {
  return {
    async handleBatch(messages: IncomingMessage[]) {
      const ids = messages.flatMap((m) => {
        const id = eventIdOf(m);
        return id === undefined ? [] : [id];
      });
      tail.wake(ids);
    },
  };
}

/**
 * The feed's group: the logging consumer's group id, then what makes it this process' own.
 * Group ids are free-form strings; this one says whose it is in the broker's group list.
 */
export function feedGroupId(groupId: string): string {
  const host = hostname()
    .replace(/[^A-Za-z0-9._-]/g, "_")
    .slice(0, 64);
  return `${groupId}.watch.${host}.${process.pid}.${crypto.randomUUID().slice(0, 8)}`;
}

export async function startWatchFeed(options: WatchFeedOptions): Promise<WatchFeed> {
  const logger = options.logger.child({ module: "watch-feed" });
  const startTail = async () => {
    const live = createLiveEvents({ logger, follow: () => tail.follow() });
    const tail = createOutboxTail({ source: options.source, live, logger, ...options.tail });
    await tail.start();
    return { live, tail };
  };
  if (options.bus) {
    const { live, tail } = await startTail();
    const unsubscribe = options.bus.subscribe((event) => tail.wake([event.id]));
    return {
      live,
      async stop() {
        unsubscribe();
        await tail.stop();
      },
    };
  }
  const kafka = options.kafka;
  if (!kafka || kafka.brokers.length === 0) {
    logger.info("KAFKA_BROKERS is not set: WatchBooks has no event source in this process");
    return { live: undefined, stop: async () => {} };
  }
  const { live, tail } = await startTail();
  try {
    const consumer = await startKafkaConsumer({
      brokers: kafka.brokers,
      topic: kafka.topic,
      groupId: feedGroupId(kafka.groupId),
      kind: "feed",
      handler: wakeOnRecords(tail),
      logger,
      onFatal: options.onFatal,
      ...(kafka.client && { kafka: kafka.client }),
    });
    return {
      live,
      async stop() {
        await consumer.stop();
        await tail.stop();
      },
    };
  } catch (err) {
    await tail.stop();
    throw err;
  }
}
