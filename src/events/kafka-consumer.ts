/**
 * The kafkajs consumer of the `grpc` process: a consumer group on the books topic, from the
 * earliest offset for a new group, committing a message's offset only after it was handled.
 * It reconnects on its own while kafkajs retries; when kafkajs gives up (CRASH without restart)
 * `onFatal` is called, and the process should exit non-zero so its supervisor restarts it.
 */
import type { Consumer, Kafka } from "kafkajs";
import type { Logger } from "../logger.ts";
import { retry } from "../retry.ts";
import type { EventConsumer } from "./consumer.ts";
import { createKafkaClient } from "./kafka.ts";

export interface KafkaConsumerOptions {
  brokers: string[];
  topic: string;
  groupId: string;
  handler: EventConsumer;
  logger: Logger;
  onFatal: (err: Error) => void;
  kafka?: Kafka;
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

export async function startKafkaConsumer(options: KafkaConsumerOptions): Promise<RunningConsumer> {
  const { topic, handler, logger } = options;
  const kafka = options.kafka ?? createKafkaClient({ brokers: options.brokers, logger });
  const consumer: Consumer = kafka.consumer({ groupId: options.groupId, ...CONSUMER_TIMING });
  let stopping = false;

  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (payload.restart) {
      logger.warn("kafka consumer crashed; kafkajs restarts it", { err: payload.error });
    } else if (!stopping) {
      options.onFatal(payload.error);
    }
  });

  await retry(
    async () => {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
    },
    { name: "connect the Kafka consumer", times: 5, delayMs: 500, exponential: true, logger },
  ).catch((err) => {
    throw new Error(
      `cannot reach Kafka at ${options.brokers.join(",")}: ${(err as Error).message}`,
    );
  });

  await consumer.run({
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning }) => {
      if (!isRunning()) return;
      await handler.handleBatch(
        batch.messages.map((m) => ({
          topic: batch.topic,
          partition: batch.partition,
          offset: m.offset,
          value: m.value,
        })),
      );
      const last = batch.messages.at(-1);
      if (last) resolveOffset(last.offset);
      await commitOffsetsIfNecessary();
      await heartbeat();
    },
  });
  logger.info("consuming book events", { topic, group: options.groupId });

  return {
    async stop() {
      stopping = true;
      // Leaves the group at once: disconnect stops the runner, which waits for the batch in hand
      // and sends LeaveGroup (consumer/index.js `disconnect` -> runner.js `stop` ->
      // consumerGroup.js `leave`), so the partitions move now, not after the session timeout.
      await consumer.disconnect();
    },
  };
}
