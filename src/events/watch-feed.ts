/**
 * Feeds this process' live events (WatchBooks) from wherever book events are published: the
 * in-process bus in `dev`, or Kafka through a consumer group of this process alone, so every
 * `grpc` replica sees every event (kafka-consumer.ts, `kind: "feed"`).
 */
import { hostname } from "node:os";
import type { Kafka } from "kafkajs";
import type { Logger } from "../logger.ts";
import type { InProcessBus } from "./bus.ts";
import { startKafkaConsumer } from "./kafka-consumer.ts";
import { createLiveEvents, type LiveEvents } from "./live-events.ts";

export interface WatchFeedOptions {
  logger: Logger;
  bus?: InProcessBus | undefined;
  kafka?: { brokers: string[]; topic: string; groupId: string; client?: Kafka } | undefined;
  /** kafkajs gave up for good: the process should exit non-zero. */
  onFatal: (err: Error) => void;
}

export interface WatchFeed {
  /** Undefined when there is no event source (grpc without KAFKA_BROKERS). */
  live: LiveEvents | undefined;
  stop(): Promise<void>;
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
  if (options.bus) {
    const live = createLiveEvents({ logger });
    const unsubscribe = options.bus.subscribe((event) => live.publish(event));
    return { live, stop: async () => void unsubscribe() };
  }
  const kafka = options.kafka;
  if (kafka && kafka.brokers.length > 0) {
    const live = createLiveEvents({ logger });
    const consumer = await startKafkaConsumer({
      brokers: kafka.brokers,
      topic: kafka.topic,
      groupId: feedGroupId(kafka.groupId),
      kind: "feed",
      handler: live,
      logger,
      onFatal: options.onFatal,
      ...(kafka.client && { kafka: kafka.client }),
    });
    return { live, stop: () => consumer.stop() };
  }
  logger.info("KAFKA_BROKERS is not set: WatchBooks has no event source in this process");
  return { live: undefined, stop: async () => {} };
}
