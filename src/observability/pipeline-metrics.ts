/**
 * Metrics of the event pipeline: the outbox relay's batches and failures, and the consumer's
 * results, latency, lag and rebalances. The relay and the consumers call these hooks; the
 * outbox's gauges are read at scrape time (metrics.ts, `setOutbox`).
 */
import type { Consumer } from "kafkajs";
import type { Db } from "../db/client.ts";
import { isDatabaseOutage } from "../db/errors.ts";
import type { EventConsumer } from "../events/consumer.ts";
import { producerFencingError } from "../events/kafka.ts";
import { countPending } from "../events/outbox.repository.ts";
import type { Metrics, OutboxSource } from "./metrics.ts";

/** The outbox gauges read this relay's state and the pending count of `db`. */
export function watchOutbox(
  metrics: Metrics | undefined,
  relay: Pick<OutboxSource, "health">,
  db: Db,
): void {
  metrics?.setOutbox({ health: () => relay.health(), pending: () => countPending(db) });
}

/** Bounded reasons of a failed relay batch, for `petbooks_outbox_publish_failures_total`. */
export type PublishFailureReason =
  | "producer_fenced"
  | "broker_timeout"
  | "broker_unreachable"
  | "broker_error"
  | "database_unavailable"
  | "database_error"
  | "other";

const chain = (err: unknown): unknown[] => {
  const errors: unknown[] = [];
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    errors.push(e);
    e = (e as { cause?: unknown }).cause;
  }
  return errors;
};

export function publishFailureReason(err: unknown): PublishFailureReason {
  if (producerFencingError(err)) return "producer_fenced";
  if (isDatabaseOutage(err)) return "database_unavailable";
  const errors = chain(err);
  const names = errors.map((e) => (e as Error).name ?? "");
  // The relay's own deadline (relay.ts) is a broker that did not answer in time, too.
  if (names.some((n) => n === "KafkaJSRequestTimeoutError" || n === "PublishTimeoutError")) {
    return "broker_timeout";
  }
  if (names.some((n) => /^KafkaJS(Connection|BrokerNotFound|ConnectionClosed)/.test(n))) {
    return "broker_unreachable";
  }
  if (names.some((n) => n.startsWith("KafkaJS"))) return "broker_error";
  // A PostgreSQL error (postgres.js or PGlite) carries its SQLSTATE, five characters.
  if (errors.some((e) => /^[0-9A-Z]{5}$/.test(String((e as { code?: unknown }).code ?? "")))) {
    return "database_error";
  }
  return "other";
}

/** What the relay reports of each batch attempt (relay.ts). */
export interface RelayMetrics {
  /** Runs one claim-and-publish attempt, recording its size and time, or its failure. */
  timeBatch(attempt: () => Promise<number>): Promise<number>;
}

export function relayMetrics(metrics: Metrics | undefined): RelayMetrics | undefined {
  if (!metrics) return undefined;
  const { published, publishFailures, batchSize, batchDuration } = metrics.outbox;
  return {
    async timeBatch(attempt) {
      const startedAt = performance.now();
      try {
        const count = await attempt();
        // An empty claim is the idle poll, not a batch.
        if (count > 0) {
          published.inc(count);
          batchSize.observe(count);
          batchDuration.observe((performance.now() - startedAt) / 1000);
        }
        return count;
      } catch (err) {
        publishFailures.inc({ reason: publishFailureReason(err) });
        throw err;
      }
    },
  };
}

/**
 * The consumer, timed per batch, its counts shown by `petbooks_consumer_events_total`. Wrapped
 * here rather than inside it: the consumer keeps the counts anyway (`stats`).
 */
export function instrumentConsumer(
  consumer: EventConsumer,
  metrics: Metrics | undefined,
): EventConsumer {
  if (!metrics) return consumer;
  const { handling } = metrics.consumer;
  metrics.setConsumer({
    stats() {
      const s = consumer.stats();
      return {
        new: s.protobuf + s.cloudeventsJson + s.legacyJson + s.inProcess,
        duplicate: s.duplicates,
        malformed: s.skipped,
      };
    },
  });
  const timed = async (handle: () => Promise<void>) => {
    const startedAt = performance.now();
    try {
      await handle();
    } finally {
      handling.observe((performance.now() - startedAt) / 1000);
    }
  };
  return {
    ...consumer,
    handleBatch: (messages) => timed(() => consumer.handleBatch(messages)),
    handleEvent: (event, source) => timed(() => consumer.handleEvent(event, source)),
  };
}

/**
 * Lag, rebalances and crashes of a kafkajs consumer, from its instrumentation events: the lag of
 * a partition is what kafkajs reports at the end of each batch (high watermark − last offset − 1).
 */
export function kafkaConsumerWatcher(
  metrics: Metrics | undefined,
): ((consumer: Consumer) => void) | undefined {
  return metrics && ((consumer) => watchKafkaConsumer(metrics, consumer));
}

function watchKafkaConsumer(metrics: Metrics, consumer: Consumer): void {
  const { lag, rebalances, crashes } = metrics.consumer;
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    const value = Number(payload.offsetLag);
    if (Number.isFinite(value)) {
      lag.set({ topic: payload.topic, partition: String(payload.partition) }, value);
    }
  });
  consumer.on(consumer.events.GROUP_JOIN, () => rebalances.inc());
  consumer.on(consumer.events.CRASH, ({ payload }) =>
    crashes.inc({ restart: String(payload.restart) }),
  );
}
