/** Kafka transport: publishes book events to one topic through kafkajs, keyed by book id. */
import {
  Kafka,
  type KafkaConfig,
  type logCreator as KafkaLogCreator,
  type LogEntry as KafkaLogEntry,
  logLevel as KafkaLogLevel,
  type Message,
  Partitioners,
  type Producer,
} from "kafkajs";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { isTransient, retryable } from "../retry.ts";
import { type Clock, systemClock } from "./clock.ts";
import { type ExtraHeaders, toKafkaMessage } from "./cloudevents.ts";
import type { BookEvent, EventTransport, TransportStats } from "./events.ts";
import { patchKafkaRequestQueue } from "./kafkajs-request-queue.ts";

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
  /** Headers each record gets after the CloudEvents ones, e.g. `traceparent` (cloudevents.ts). */
  extraHeaders?: ExtraHeaders;
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
 * bounded retry around them (KafkaConnection.connect) decides when to give up, and logs each
 * attempt.
 */
const CLIENT_RETRIES = 2;

/**
 * kafkajs retries an idempotent producer's sends forever by default; bounded, a send fails and
 * the relay retries the batch later (consumers dedupe on the event id, `ce_id`).
 */
const SEND_RETRIES = 5;

/**
 * The records for `events`, in the same order: one book's events share a key, so a partition.
 * Each is a CloudEvent in binary content mode (cloudevents.ts, docs/events.md).
 */
export function toKafkaMessages(events: readonly BookEvent[], extra?: ExtraHeaders): Message[] {
  return events.map((event) => toKafkaMessage(event, extra));
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

/**
 * kafkajs error lines about trouble it retries by itself: each failure it gives up on reaches us
 * as a rejected send or admin call, or a consumer CRASH event, and is logged there at its own
 * level (the relay's stall error, the consumer's crash handling). Kept as warnings.
 */
const TRANSIENT_KAFKAJS_ERRORS: readonly { namespace?: string; message: RegExp }[] = [
  // Connection: connect errors and timeouts, and every error response (network/connection.js).
  { namespace: "Connection", message: /./ },
  // BrokerPool: reconnecting to a seed broker or a known one (cluster/brokerPool.js).
  { namespace: "BrokerPool", message: /^(Failed to connect|Connection (error|timeout))/ },
  // Producer: every failed send; the relay retries it (producer/sendMessages.js).
  { namespace: "Producer", message: /./ },
  // Consumer: "Crash: …" and "Restarting the consumer in …ms" (consumer/index.js); the CRASH
  // listener logs the restart, or shuts the process down when kafkajs does not restart.
  { namespace: "Consumer", message: /^(Crash: |Restarting the consumer)/ },
  { namespace: "Runner", message: /^The coordinator is not aware of this member/ },
];

/**
 * Creating a topic that exists is the normal case on every start after the first: kafkajs's
 * admin answers `false` when every topic error is TOPIC_ALREADY_EXISTS (admin/index.js), but the
 * connection has already logged the response at error level. Other creation errors reject
 * `createTopics`, so nothing is lost by logging this one at debug.
 */
const isTopicAlreadyExists = (
  namespace: string,
  message: string,
  fields: Record<string, unknown>,
) =>
  namespace === "Connection" &&
  message.startsWith("Response CreateTopics") &&
  fields.error === "Topic creation errors";

export interface KafkaLogOptions {
  /** At most one line of each kind (level, component, message shape) per window. Default 30 s. */
  windowMs?: number;
  clock?: Clock;
}

/** Kinds remembered at most; older ones are forgotten first when the map is full. */
const MAX_LOG_KINDS = 1000;

/**
 * Routes kafkajs's log lines into `logger`, with kafkajs's namespace as `component`. While an
 * outage lasts kafkajs repeats the same lines on every retry, so each kind of line is logged once
 * per window; the next one after the window carries `suppressed`, the count left out meanwhile.
 */
export function kafkaLogCreator(logger: Logger, options: KafkaLogOptions = {}): KafkaLogCreator {
  const windowMs = options.windowMs ?? 30_000;
  const clock = options.clock ?? systemClock;
  const kinds = new Map<string, { since: number; suppressed: number }>();

  /** Whether to log now, and how many lines of this kind were left out since the last one. */
  const admit = (kind: string): { log: boolean; suppressed: number } => {
    const now = clock.now();
    const seen = kinds.get(kind);
    if (seen && now - seen.since < windowMs) {
      seen.suppressed += 1;
      return { log: false, suppressed: 0 };
    }
    kinds.delete(kind);
    if (kinds.size >= MAX_LOG_KINDS) {
      const oldest = kinds.keys().next().value;
      if (oldest !== undefined) kinds.delete(oldest);
    }
    kinds.set(kind, { since: now, suppressed: 0 });
    return { log: true, suppressed: seen?.suppressed ?? 0 };
  };

  return () => (entry: KafkaLogEntry) => {
    const { message, ...rest } = entry.log;
    const fields: Record<string, unknown> = { component: `kafkajs.${entry.namespace}` };
    for (const [key, value] of Object.entries(rest)) {
      if (!DROPPED_LOG_FIELDS.test(key)) fields[key] = value;
    }
    const text = String(message);
    const level = levelOf(entry, text, fields);
    // Numbers vary between repeats (ports, retry counts, delays, API versions); the shape does not.
    const shape = `${text}|${String(fields.error ?? "")}`.replace(/\d+/g, "#");
    const { log, suppressed } = admit(`${level}|${entry.namespace}|${shape}`);
    if (!log) return;
    if (suppressed > 0) fields.suppressed = suppressed;
    logger[level](text, fields);
  };
}

function levelOf(
  entry: KafkaLogEntry,
  text: string,
  fields: Record<string, unknown>,
): "debug" | "info" | "warn" | "error" {
  switch (entry.level) {
    case KafkaLogLevel.ERROR:
      if (isTopicAlreadyExists(entry.namespace, text, fields)) return "debug";
      return TRANSIENT_KAFKAJS_ERRORS.some(
        (t) =>
          (t.namespace === undefined || t.namespace === entry.namespace) && t.message.test(text),
      )
        ? "warn"
        : "error";
    case KafkaLogLevel.WARN:
      return EXPECTED_KAFKAJS_WARNINGS.has(text) ? "debug" : "warn";
    case KafkaLogLevel.INFO:
      return "info";
    default:
      return "debug";
  }
}

/** A kafkajs client logging warnings and errors into `logger`. */
export function createKafkaClient(options: KafkaClientOptions): Kafka {
  patchKafkaRequestQueue();
  return new Kafka({
    brokers: options.brokers,
    clientId: options.clientId ?? DEFAULT_CLIENT_ID,
    logLevel: KafkaLogLevel.WARN,
    logCreator: kafkaLogCreator(options.logger),
    retry: { retries: CLIENT_RETRIES },
    ...options.tuning,
  });
}

/**
 * Broker answers meaning that the producer's id, epoch or sequence numbers are no longer usable:
 * kafkajs marks them non-retriable (protocol/error.js), keeps the producer's state, and sends the
 * next batch with the same id from the same sequence, so every later send fails the same way.
 * Only a new producer (a new id from InitProducerId, sequences from 0) gets past them.
 *
 * The classic case is a lost acknowledgement: the broker stored a batch, the ack never arrived,
 * kafkajs rolled its sequence numbers back (producer/sendMessages.js, after `broker.produce`
 * throws) and, once its retries ran out, the relay's next batch (now with more events) starts
 * below what the broker expects: OUT_OF_ORDER_SEQUENCE_NUMBER, forever. DUPLICATE_SEQUENCE_NUMBER
 * is the same situation seen from the other side.
 */
const PRODUCER_FENCING_ERRORS = new Map<string, number>([
  ["OUT_OF_ORDER_SEQUENCE_NUMBER", 45],
  ["DUPLICATE_SEQUENCE_NUMBER", 46],
  ["INVALID_PRODUCER_EPOCH", 47],
  ["INVALID_PRODUCER_ID_MAPPING", 49],
  ["UNKNOWN_PRODUCER_ID", 59],
]);
const PRODUCER_FENCING_CODES = new Set(PRODUCER_FENCING_ERRORS.values());

/**
 * The broker error type when `err` says the producer must be replaced, else undefined. kafkajs
 * hands the protocol error over as is when it bails (a KafkaJSProtocolError with `type` and
 * `code`), or wrapped: KafkaJSNonRetriableError and KafkaJSNumberOfRetriesExceeded keep the
 * original as `cause` (errors.js, retry/index.js); `originalError` and the `errors` of an
 * aggregate are looked through too.
 */
export function producerFencingError(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  while (queue.length > 0 && seen.size < 20) {
    const e = queue.shift();
    if (typeof e !== "object" || e === null || seen.has(e)) continue;
    seen.add(e);
    const { type, code, cause, originalError, errors } = e as {
      type?: unknown;
      code?: unknown;
      cause?: unknown;
      originalError?: unknown;
      errors?: unknown;
    };
    if (typeof type === "string" && PRODUCER_FENCING_ERRORS.has(type)) return type;
    if (typeof code === "number" && PRODUCER_FENCING_CODES.has(code) && e instanceof Error) {
      return [...PRODUCER_FENCING_ERRORS].find(([, c]) => c === code)?.[0];
    }
    queue.push(cause, originalError);
    if (Array.isArray(errors)) queue.push(...errors);
  }
  return undefined;
}

/** The transport's startup: the topic made sure of, then the producer connected. */
export class KafkaConnection {
  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
    private readonly partitions: number | undefined,
    readonly logger: Logger,
    readonly attempts = 5,
    readonly delayMs = 500,
    readonly sleep: (ms: number) => Promise<void> = Bun.sleep,
  ) {}

  // Creating a topic that exists is a no-op, so a whole attempt can be repeated.
  @retryable((c: KafkaConnection) => ({
    name: "connect to Kafka",
    times: c.attempts,
    delayMs: c.delayMs,
    exponential: true,
    retryOn: isTransient,
    sleep: c.sleep,
  }))
  async connect(producer: Producer): Promise<void> {
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      const created = await admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic: this.topic, numPartitions: this.partitions }],
      });
      if (created) this.logger.info("created Kafka topic", { topic: this.topic });
      await producer.connect();
    } catch (err) {
      await producer.disconnect().catch(() => {});
      throw err;
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }
}

export interface KafkaTransport extends EventTransport {
  stats(): TransportStats;
}

export function createKafkaTransport(options: KafkaTransportOptions): KafkaTransport {
  const { topic, logger } = options;
  const kafka = options.kafka ?? createKafkaClient(options);
  const newProducer = () =>
    kafka.producer({
      idempotent: true,
      // kafkajs already serialises an idempotent producer's requests per broker (eosManager's
      // broker lock, taken in producer/sendMessages.js); one in flight per connection on top of
      // that keeps a retried batch from ever being overtaken, so one book's events stay in order.
      maxInFlightRequests: 1,
      retry: { retries: SEND_RETRIES },
      createPartitioner: Partitioners.DefaultPartitioner,
    });
  let producer = newProducer();
  /** False for a replacement producer until its first send connects it. */
  let connected = false;
  let producerRecreations = 0;
  let started = false;
  let stopping: Promise<void> | undefined;

  const connection = new KafkaConnection(
    kafka,
    topic,
    options.partitions,
    logger,
    options.startAttempts,
    options.startDelayMs,
  );

  /**
   * Swaps in a new producer; the caller's retry sends the batch again through it. Consumers drop
   * the copies of what the broker had already stored (they dedupe on the event id).
   * Disconnecting waits for the old producer's requests still in flight (network/connection.js,
   * `disconnect` awaits `waitForPendingRequests`), so none of them can land after the new
   * producer's and put one book's events out of order.
   */
  const replaceProducer = async (reason: string) => {
    const old = producer;
    producer = newProducer();
    connected = false;
    producerRecreations += 1;
    logger.warn("Kafka producer replaced; the batch will be sent again by a new producer", {
      reason,
      producer_recreations: producerRecreations,
    });
    await old
      .disconnect()
      .catch((err) => logger.debug("disconnecting the replaced producer failed", { err }));
  };

  return {
    name: "kafka",

    async start() {
      if (started) return;
      try {
        await connection.connect(producer);
        connected = true;
      } catch (err) {
        connected = false;
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
      const current = producer;
      try {
        if (!connected) {
          // A replacement: connecting asks the broker for a new producer id.
          await current.connect();
          connected = true;
        }
        await current.send({
          topic,
          acks: -1,
          messages: toKafkaMessages(events, options.extraHeaders),
        });
      } catch (err) {
        const reason = producerFencingError(err);
        // Only once per bad producer, however many sends were waiting on it.
        if (reason && current === producer && started) await replaceProducer(reason);
        throw err;
      }
    },

    stop() {
      if (!started) return stopping ?? Promise.resolve();
      started = false;
      stopping = producer.disconnect();
      return stopping;
    },

    stats: () => ({ producerRecreations }),
  };
}
