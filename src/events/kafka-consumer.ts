/**
 * The kafkajs consumers of the `grpc` process, on the books topic:
 * - the logging consumer: group KAFKA_GROUP_ID, shared by every replica (each event is handled
 *   by one of them), from the earliest offset for a new group, committing a message's offset
 *   only after it was handled;
 * - the WatchBooks feed (`kind: "feed"`): a group of this process alone, so it reads every
 *   partition, whatever the other replicas do. It starts at the latest offset (a new group with
 *   `fromBeginning: false` resets to the log end) and is deleted on stop. It commits its offsets
 *   all the same: kafkajs forgets its positions at every rejoin (a session that timed out, a
 *   coordinator that moved, partitions added), starting over from the committed offsets, and
 *   without any from the log end, which would skip what was published meanwhile.
 * They reconnect on their own while kafkajs retries; when kafkajs gives up (CRASH without
 * restart) `onFatal` is called, and the process should exit non-zero so its supervisor restarts it.
 * A batch whose handling fails because the database is unavailable is held and tried again
 * (database-wait.ts), so that an outage does not make the group rebalance over and over.
 */
import type { Admin, Consumer, Kafka } from "kafkajs";
import type { Logger } from "../logger.ts";
import { isTransient, retryable } from "../retry.ts";
import { type Clock, systemClock } from "./clock.ts";
import type { EventConsumer } from "./consumer.ts";
import { handleWhenDatabaseAnswers } from "./database-wait.ts";
import { createKafkaClient } from "./kafka.ts";

export interface KafkaConsumerOptions {
  brokers: string[];
  topic: string;
  groupId: string;
  handler: Pick<EventConsumer, "handleBatch">;
  /**
   * `logging` (default): from the earliest offset for a new group, offsets committed after each
   * batch. `feed`: from the latest offset, offsets committed likewise, the group deleted on stop.
   */
  kind?: "logging" | "feed";
  logger: Logger;
  onFatal: (err: Error) => void;
  kafka?: Kafka;
  /** Sees the kafkajs consumer once made, for its lag and rebalance events (metrics). */
  watch?: ((consumer: Consumer) => void) | undefined;
  /** Time for the waits while the database is unavailable. Default: the real one. */
  clock?: Clock;
}

export interface RunningConsumer {
  stop(): Promise<void>;
}

/**
 * Group timing. kafkajs's default session timeout is 30 s: a member that dies without leaving
 * keeps its partitions that long. 10 s moves them in about 10 s (brokers accept 6 s to 30 min by
 * default). kafkajs heartbeats from the fetch loop, after each batch or empty fetch, at most every
 * `heartbeatInterval` (consumer/runner.js, consumerGroup.js): a long poll of 3 s at most keeps
 * heartbeats about 3 s apart, a third of the session as kafkajs advises (consumer/index.js), and
 * lets the live members notice a rebalance within seconds.
 */
export const CONSUMER_TIMING = {
  sessionTimeout: 10_000,
  heartbeatInterval: 3_000,
  maxWaitTimeInMs: 3_000,
} as const;

/** Joining the group: connect, then subscribe to the topic. */
export class KafkaConsumerConnection {
  constructor(
    private readonly consumer: Pick<Consumer, "connect" | "subscribe">,
    readonly logger: Logger,
    readonly sleep: (ms: number) => Promise<void> = Bun.sleep,
  ) {}

  @retryable((c: KafkaConsumerConnection) => ({
    name: "connect the Kafka consumer",
    times: 5,
    delayMs: 500,
    exponential: true,
    retryOn: isTransient,
    sleep: c.sleep,
  }))
  async connect(topic: string, fromBeginning: boolean): Promise<void> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topic, fromBeginning });
  }
}

export async function startKafkaConsumer(options: KafkaConsumerOptions): Promise<RunningConsumer> {
  const { topic, handler, logger } = options;
  const feed = options.kind === "feed";
  const kafka = options.kafka ?? createKafkaClient({ brokers: options.brokers, logger });
  const consumer: Consumer = kafka.consumer({ groupId: options.groupId, ...CONSUMER_TIMING });
  options.watch?.(consumer);
  const clock = options.clock ?? systemClock;
  let stopping = false;
  /** Ends a wait for the database at once, before kafkajs waits for the batch in hand. */
  const stopper = new AbortController();

  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (payload.restart) {
      logger.warn("kafka consumer crashed; kafkajs restarts it", { err: payload.error });
    } else if (!stopping) {
      options.onFatal(payload.error);
    }
  });

  await new KafkaConsumerConnection(consumer, logger).connect(topic, !feed).catch((err) => {
    throw new Error(
      `cannot reach Kafka at ${options.brokers.join(",")}: ${(err as Error).message}`,
    );
  });

  await consumer.run({
    eachBatchAutoResolve: false,
    // The feed commits too, though its group lives only as long as this process: kafkajs reads
    // the committed offsets at every rejoin (consumerGroup.js sync makes a new OffsetManager,
    // whose resolveOffsets falls back to the log end without them), so without commits a rejoin
    // would skip every event published since the last fetch.
    autoCommit: true,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      if (!isRunning()) return;
      const messages = batch.messages.map((m) => ({
        topic: batch.topic,
        partition: batch.partition,
        offset: m.offset,
        value: m.value,
        headers: m.headers,
      }));
      const handled = await handleWhenDatabaseAnswers(
        () => handler.handleBatch(messages),
        { heartbeat, isRunning, isStale },
        {
          clock,
          logger,
          stopping: stopper.signal,
          fields: { topic: batch.topic, partition: batch.partition, offset: messages[0]?.offset },
        },
      );
      if (!handled) return;
      // kafkajs commits the resolved offsets once this returns (autoCommit): only what was handled.
      const last = batch.messages.at(-1);
      if (last) resolveOffset(last.offset);
      await heartbeat();
    },
  });
  logger.info(feed ? "feeding WatchBooks from Kafka" : "consuming book events", {
    topic,
    group: options.groupId,
  });

  return {
    async stop() {
      stopping = true;
      stopper.abort();
      // Leaves the group at once: disconnect stops the runner, which waits for the batch in hand
      // and sends LeaveGroup (consumer/index.js `disconnect` -> runner.js `stop` ->
      // consumerGroup.js `leave`), so the partitions move now, not after the session timeout.
      await consumer.disconnect();
      if (feed) await deleteGroup(kafka, options.groupId, logger);
    },
  };
}

/** GROUP_ID_NOT_FOUND for every group: it never formed, which is as good as deleted. */
function groupIsGone(err: unknown): boolean {
  const codes = ((err as { groups?: { errorCode?: number }[] } | null)?.groups ?? []).map(
    (g) => g.errorCode,
  );
  return codes.length > 0 && codes.every((code) => code === 69);
}

/**
 * Deletes the feed's group once it is empty. The broker refuses a group that still has members
 * (NON_EMPTY_GROUP): LeaveGroup was answered before disconnect resolved, so that is rare, and a
 * few tries settle it. kafkajs's admin bails at once on such an error (admin/index.js
 * `deleteGroups` retries only NOT_CONTROLLER and COORDINATOR_NOT_AVAILABLE), hence our own retry;
 * kafkajs marks its KafkaJSDeleteGroupsError retriable, so isTransient takes it.
 */
export class KafkaGroupDeletion {
  constructor(
    private readonly admin: Pick<Admin, "deleteGroups">,
    readonly logger: Logger,
    readonly sleep: (ms: number) => Promise<void> = Bun.sleep,
  ) {}

  @retryable((c: KafkaGroupDeletion) => ({
    name: "delete the WatchBooks feed's consumer group",
    times: 3,
    delayMs: 200,
    exponential: true,
    retryOn: (err) => !groupIsGone(err) && isTransient(err),
    sleep: c.sleep,
  }))
  async delete(groupId: string): Promise<void> {
    await this.admin.deleteGroups([groupId]);
  }
}

/**
 * A group that cannot be deleted (or of a process that crashed) is dropped by the broker by
 * itself, its committed offsets with it, offsets.retention.minutes after it emptied.
 */
async function deleteGroup(kafka: Kafka, groupId: string, logger: Logger): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await new KafkaGroupDeletion(admin, logger).delete(groupId);
    logger.debug("deleted the WatchBooks feed's consumer group", { group: groupId });
  } catch (err) {
    if (groupIsGone(err)) return;
    logger.warn(
      "could not delete the WatchBooks feed's consumer group; the broker drops it later",
      {
        group: groupId,
        err,
      },
    );
  } finally {
    await admin.disconnect().catch(() => {});
  }
}
