/**
 * For tests: a kafkajs client whose idempotent producers talk to an in-memory broker that keeps
 * the broker's producer state (id, per-partition sequence numbers, the last batches for
 * deduplication), so that a lost acknowledgement plays out as it does against Kafka.
 *
 * The producer side copies what kafkajs 2.2.4 does: `connect` asks for a producer id only once
 * per producer object (producer/index.js), sequence numbers advance before a produce request and
 * are rolled back for every partition of the request when it fails (producer/sendMessages.js),
 * non-retriable broker errors come out as the bare KafkaJSProtocolError (the retrier's `bail`),
 * and retriable ones, once the retries are spent, as KafkaJSNumberOfRetriesExceeded with the last
 * error as `cause` (retry/index.js).
 */
import {
  type Kafka,
  KafkaJSConnectionError,
  KafkaJSError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  KafkaJSRequestTimeoutError,
  type Message,
  type PartitionMetadata,
  type ProducerConfig,
  type ProducerRecord,
} from "kafkajs";

export interface StoredRecord {
  partition: number;
  offset: number;
  producerId: number;
  key: string;
  value: string;
  eventId: string;
}

/** Broker error codes the fake answers with (kafkajs protocol/error.js). */
const BROKER_ERRORS = {
  OUT_OF_ORDER_SEQUENCE_NUMBER: {
    code: 45,
    message: "The broker received an out of order sequence number",
  },
  UNKNOWN_PRODUCER_ID: { code: 59, message: "The broker could not locate the producer metadata" },
} as const;
type BrokerError = keyof typeof BROKER_ERRORS;

export function protocolError(type: BrokerError): KafkaJSProtocolError {
  const { code, message } = BROKER_ERRORS[type];
  // kafkajs builds these from its error-code table: { type, code, retriable, message }.
  return new KafkaJSProtocolError(
    Object.assign(new Error(message), { type, code, retriable: false }),
  );
}

const retriesExhausted = (cause: Error) =>
  new KafkaJSNumberOfRetriesExceeded(cause, { retryCount: 5, retryTime: 9600 });

interface PartitionState {
  nextSequence: number;
  /** The last five batches, as Kafka keeps them to recognise a resent one. */
  batches: { first: number; last: number }[];
}

export function createFakeKafka(options: { partitions: number; topicExists?: boolean }) {
  const partitionMetadata: PartitionMetadata[] = Array.from(
    { length: options.partitions },
    (_, partitionId) => ({
      partitionId,
      leader: 1,
      replicas: [1],
      isr: [1],
      offlineReplicas: [],
      partitionErrorCode: 0,
    }),
  );
  const logs: StoredRecord[][] = partitionMetadata.map(() => []);
  const producerStates = new Map<string, PartitionState>();
  let nextProducerId = 1000;
  let topicExists = options.topicExists ?? false;
  let available = true;
  let acksToLose = 0;
  /** What the broker and the client did, in order, for assertions. */
  const journal: string[] = [];

  /** Kafka's append check for one partition of an idempotent produce request. */
  const append = (
    producerId: number,
    partition: number,
    firstSequence: number,
    messages: Message[],
  ): "ok" | "duplicate" | BrokerError => {
    const key = `${producerId}:${partition}`;
    let state = producerStates.get(key);
    if (!state) {
      if (firstSequence !== 0) return "UNKNOWN_PRODUCER_ID";
      state = { nextSequence: 0, batches: [] };
      producerStates.set(key, state);
    }
    const last = firstSequence + messages.length - 1;
    if (state.batches.some((b) => b.first === firstSequence && b.last === last)) return "duplicate";
    if (firstSequence !== state.nextSequence) return "OUT_OF_ORDER_SEQUENCE_NUMBER";
    const log = logs[partition] as StoredRecord[];
    for (const message of messages) {
      log.push({
        partition,
        offset: log.length,
        producerId,
        key: String(message.key),
        value: String(message.value),
        eventId: String((message.headers as Record<string, string>)["event-id"]),
      });
    }
    state.nextSequence = last + 1;
    state.batches = [...state.batches, { first: firstSequence, last }].slice(-5);
    return "ok";
  };

  let producerCount = 0;
  const producer = (config: ProducerConfig = {}) => {
    const name = `producer#${++producerCount}`;
    const partitioner = config.createPartitioner?.();
    let producerId: number | undefined;
    let connected = false;
    const sequences = new Map<number, number>();
    return {
      name,
      async connect() {
        if (!available) {
          throw new KafkaJSConnectionError("Connection error: connect ECONNREFUSED", {
            broker: "kafka:9092",
          });
        }
        // InitProducerId, only for a producer that has none yet (producer/index.js, `connect`).
        if (producerId === undefined) producerId = nextProducerId++;
        connected = true;
        journal.push(`${name} connect pid=${producerId}`);
      },
      async disconnect() {
        connected = false;
        journal.push(`${name} disconnect`);
      },
      async send(record: ProducerRecord) {
        if (!connected || producerId === undefined) {
          throw new KafkaJSError("The producer is disconnected");
        }
        if (!available) {
          journal.push(`${name} send: broker unavailable`);
          throw retriesExhausted(
            new KafkaJSConnectionError("Connection error: connect ECONNREFUSED"),
          );
        }
        const byPartition = new Map<number, Message[]>();
        for (const message of record.messages) {
          const partition = partitioner
            ? partitioner({ topic: record.topic, partitionMetadata, message })
            : 0;
          byPartition.set(partition, [...(byPartition.get(partition) ?? []), message]);
        }
        // The sequence numbers advance before the request is sent…
        const firsts = new Map<number, number>();
        for (const [partition, messages] of byPartition) {
          const first = sequences.get(partition) ?? 0;
          firsts.set(partition, first);
          sequences.set(partition, first + messages.length);
        }
        const rollBack = () => {
          for (const [partition, first] of firsts) sequences.set(partition, first);
        };
        const answers = [...byPartition].map(([partition, messages]) =>
          append(producerId as number, partition, firsts.get(partition) as number, messages),
        );
        journal.push(`${name} send pid=${producerId}: ${answers.join(",")}`);
        if (acksToLose > 0) {
          // …the broker stored the batch, the acknowledgement never arrives, and the outage
          // lasts longer than kafkajs's retries: it rolls the sequences back and gives up.
          acksToLose -= 1;
          available = false;
          rollBack();
          throw retriesExhausted(
            new KafkaJSRequestTimeoutError("Request Produce(key: 0, version: 7) timed out"),
          );
        }
        const failed = answers.find((a): a is BrokerError => a !== "ok" && a !== "duplicate");
        if (failed) {
          // The response carries a partition error: the whole request failed, for every
          // partition in it; non-retriable, so kafkajs bails out with the bare error.
          rollBack();
          throw protocolError(failed);
        }
        return [];
      },
    };
  };

  const admin = () => ({
    async connect() {
      if (!available) throw new KafkaJSConnectionError("Connection error: connect ECONNREFUSED");
    },
    async createTopics() {
      const created = !topicExists;
      topicExists = true;
      return created;
    },
    async disconnect() {},
  });

  return {
    kafka: { producer, admin } as unknown as Kafka,
    journal,
    /** The next produce request is stored, its ack lost, and the broker then stays away. */
    loseNextAck() {
      acksToLose += 1;
    },
    setAvailable(value: boolean) {
      available = value;
    },
    /** Every record stored, partition by partition. */
    records: () => logs.flat(),
    /**
     * What a consumer that drops repeated event ids sees, per book (key), in log order: Kafka
     * only orders within a partition, and one book's events share one.
     */
    firstDeliveriesByKey() {
      const seen = new Set<string>();
      const byKey = new Map<string, string[]>();
      for (const log of logs) {
        for (const record of log) {
          if (seen.has(record.eventId)) continue;
          seen.add(record.eventId);
          byKey.set(record.key, [...(byKey.get(record.key) ?? []), record.eventId]);
        }
      }
      return byKey;
    },
  };
}

export type FakeKafka = ReturnType<typeof createFakeKafka>;
