/** Kafka transport: publishes book events to one topic through kafkajs, keyed by book id. */
import {
  Kafka,
  type KafkaConfig,
  type logCreator as KafkaLogCreator,
  type LogEntry as KafkaLogEntry,
  logLevel as KafkaLogLevel,
  type Message,
  Partitioners,
} from "kafkajs";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { retry } from "../retry.ts";
import type { BookEvent, EventTransport } from "./events.ts";

export interface KafkaTransportOptions {
  brokers: string[];
  topic: string;
  clientId?: string;
  logger: Logger;
  /** A ready client, e.g. with short timeouts in tests; built from `brokers` when absent. */
  kafka?: Kafka;
  /** Partitions of the topic when `start` creates it; the broker's default when absent. */
  partitions?: number;
  /** Connection attempts at startup before giving up. Default 5. */
  startAttempts?: number;
  /** Milliseconds before the second startup attempt, doubling after each. Default 500. */
  startDelayMs?: number;
}

export interface KafkaClientOptions {
  brokers: string[];
  clientId?: string;
  logger: Logger;
  /** kafkajs settings to override, e.g. shorter timeouts and fewer retries in tests. */
  tuning?: Pick<KafkaConfig, "connectionTimeout" | "requestTimeout" | "retry">;
}

const DEFAULT_CLIENT_ID = "petbooks";

/**
 * Few kafkajs-internal retries (about a second per connection attempt): at startup our own
 * bounded `retry` around them decides when to give up, and logs each attempt.
 */
const CLIENT_RETRIES = 2;

/**
 * kafkajs retries an idempotent producer's sends forever by default; bounded, a send fails and
 * the relay retries the batch later (consumers dedupe on the event-id header).
 */
const SEND_RETRIES = 5;

/** The messages for `events`, in the same order: one book's events share a key, so a partition. */
export function toKafkaMessages(events: readonly BookEvent[]): Message[] {
  return events.map((event) => ({
    key: event.book.id,
    value: JSON.stringify(event),
    headers: { "event-id": event.id, "event-type": event.type },
    timestamp: String(epochMillis(event)),
  }));
}

function epochMillis(event: BookEvent): number {
  const millis = Date.parse(event.occurred_at);
  if (Number.isNaN(millis)) {
    throw new TypeError(`event ${event.id}: occurred_at is not a date: ${event.occurred_at}`);
  }
  return millis;
}

/** Parses a `KAFKA_BROKERS` value such as "kafka-1:9092, kafka-2:9092" into host:port entries. */
export function parseKafkaBrokers(value: string, variable = "KAFKA_BROKERS"): string[] {
  const entries = value.split(",").map((entry) => entry.trim());
  const problems = entries.flatMap((entry, index) => {
    const problem = brokerProblem(entry);
    return problem ? [`${variable}: entry ${index + 1} ${problem}`] : [];
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return entries;
}

function brokerProblem(entry: string): string | undefined {
  if (entry === "") return "is empty";
  // Only host:port: anything else (URLs, user:password@host) has no business in a broker list.
  const match = /^([^\s/@]+):(\d{1,5})$/.exec(entry);
  if (!match) return `"${entry.replace(/^.*@/, "…@")}" is not host:port`;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return `has port ${port} outside 1-65535`;
  return undefined;
}

/** kafkajs warnings we cause on purpose; logged at debug so real warnings stay visible. */
const EXPECTED_KAFKAJS_WARNINGS = new Set([
  "Limiting retries for the idempotent producer may invalidate EoS guarantees",
]);
/** Fields kafkajs adds that we either have already or must not log. */
const DROPPED_LOG_FIELDS = /^(timestamp|logger|stack)$|sasl|password|secret|token/i;

/** Routes kafkajs's log lines into `logger`, with kafkajs's namespace as `component`. */
export function kafkaLogCreator(logger: Logger): KafkaLogCreator {
  return () => (entry: KafkaLogEntry) => {
    const { message, ...rest } = entry.log;
    const fields: Record<string, unknown> = { component: `kafkajs.${entry.namespace}` };
    for (const [key, value] of Object.entries(rest)) {
      if (!DROPPED_LOG_FIELDS.test(key)) fields[key] = value;
    }
    const text = String(message);
    switch (entry.level) {
      case KafkaLogLevel.ERROR:
        return logger.error(text, fields);
      case KafkaLogLevel.WARN:
        return EXPECTED_KAFKAJS_WARNINGS.has(text)
          ? logger.debug(text, fields)
          : logger.warn(text, fields);
      case KafkaLogLevel.INFO:
        return logger.info(text, fields);
      default:
        return logger.debug(text, fields);
    }
  };
}

/** A kafkajs client logging warnings and errors into `logger`. */
export function createKafkaClient(options: KafkaClientOptions): Kafka {
  return new Kafka({
    brokers: options.brokers,
    clientId: options.clientId ?? DEFAULT_CLIENT_ID,
    logLevel: KafkaLogLevel.WARN,
    logCreator: kafkaLogCreator(options.logger),
    retry: { retries: CLIENT_RETRIES },
    ...options.tuning,
  });
}

export function createKafkaTransport(options: KafkaTransportOptions): EventTransport {
  const { topic, logger } = options;
  const kafka = options.kafka ?? createKafkaClient(options);
  const producer = kafka.producer({
    idempotent: true,
    // kafkajs does not re-sequence retried batches: more than one in flight could reorder them.
    maxInFlightRequests: 1,
    retry: { retries: SEND_RETRIES },
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  let started = false;
  let stopping: Promise<void> | undefined;

  const connectAndCreateTopic = async () => {
    const admin = kafka.admin();
    try {
      await admin.connect();
      const created = await admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic, numPartitions: options.partitions }],
      });
      if (created) logger.info("created Kafka topic", { topic });
      await producer.connect();
    } catch (err) {
      await producer.disconnect().catch(() => {});
      throw err;
    } finally {
      await admin.disconnect().catch(() => {});
    }
  };

  return {
    name: "kafka",

    async start() {
      if (started) return;
      try {
        await retry(connectAndCreateTopic, {
          name: "connect to Kafka",
          times: options.startAttempts ?? 5,
          delayMs: options.startDelayMs ?? 500,
          exponential: true,
          logger,
        });
      } catch (err) {
        throw new Error(
          `cannot reach Kafka at ${options.brokers.join(",")}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      started = true;
      stopping = undefined;
      logger.info("Kafka transport started", { topic, brokers: options.brokers });
    },

    async publish(events) {
      if (!started) throw new Error("Kafka transport is not started");
      if (events.length === 0) return;
      await producer.send({ topic, acks: -1, messages: toKafkaMessages(events) });
    },

    stop() {
      if (!started) return stopping ?? Promise.resolve();
      started = false;
      stopping = producer.disconnect();
      return stopping;
    },
  };
}
