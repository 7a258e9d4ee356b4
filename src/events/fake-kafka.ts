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
 *
 * The consumer side keeps the broker's group semantics that petbooks relies on: members of one
 * group split the partitions (round robin, rebalanced when one joins or leaves), another group
 * gets every record again; a partition without a committed offset starts at the log's start
 * (`fromBeginning: true`) or at its end at assignment (`false`, Kafka's auto.offset.reset
 * latest); with `autoCommit` (the default) the offsets `eachBatch` resolved are committed when
 * it returns or throws (runner.js autoCommitOffsets), and `commitOffsetsIfNecessary()` commits
 * nothing by itself (it would past an autoCommitInterval or autoCommitThreshold: none is set);
 * a batch that throws is fetched again from what was resolved, and once the runner's retries
 * (5) are spent the consumer crashes: it leaves the group, CRASH is emitted with `restart`, and it
 * joins again, from the committed offsets (runner.js scheduleFetchManager, consumer/index.js
 * onCrash; the waits between are skipped); header values reach `eachBatch` as Buffers; and
 * DeleteGroups fails for a group with members (NON_EMPTY_GROUP) or none at all
 * (GROUP_ID_NOT_FOUND), as KafkaJSDeleteGroupsError.
 */
import {
  type EachBatchPayload,
  type IHeaders,
  type Kafka,
  KafkaJSConnectionError,
  KafkaJSDeleteGroupsError,
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
  value: Buffer;
  headers: Record<string, string>;
  /** The `ce_id` header. */
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
      const headers = Object.fromEntries(
        Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]),
      );
      log.push({
        partition,
        offset: log.length,
        producerId,
        key: String(message.key),
        value: Buffer.from(message.value ?? ""),
        headers,
        eventId: String(headers.ce_id),
      });
    }
    appended();
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
    async deleteGroups(groupIds: string[]) {
      const failed = groupIds.flatMap((groupId) => {
        const group = groups.get(groupId);
        if (!group)
          return [{ groupId, errorCode: 69, error: new KafkaJSError("GROUP_ID_NOT_FOUND") }];
        if (group.members.length > 0) {
          return [{ groupId, errorCode: 68, error: new KafkaJSError("NON_EMPTY_GROUP") }];
        }
        return [];
      });
      if (failed.length > 0) throw new KafkaJSDeleteGroupsError("Error in DeleteGroups", failed);
      for (const groupId of groupIds) groups.delete(groupId);
      journal.push(`delete groups ${groupIds.join(",")}`);
      return groupIds.map((groupId) => ({ groupId, errorCode: 0 }));
    },
    async disconnect() {},
  });

  // ---- consumer groups ----

  interface Member {
    name: string;
    fromBeginning: boolean;
    /** Partition -> next offset to hand over. */
    positions: Map<number, number>;
    /** Bumped by a rejoin: what a batch in hand resolves no longer moves the new positions. */
    generation: number;
  }
  interface Group {
    members: Member[];
    /** Partition -> next offset to read (Kafka's committed offset). */
    committed: Map<number, number>;
  }
  const groups = new Map<string, Group>();
  /** `heartbeat()` calls from `eachBatch` (kafkajs sends one once its heartbeatInterval passed). */
  let heartbeats = 0;
  let waiters: (() => void)[] = [];
  /** Wakes every fetch loop: records arrived, or the groups changed. */
  function appended() {
    const woken = waiters;
    waiters = [];
    for (const wake of woken) wake();
  }
  const nextChange = () => new Promise<void>((resolve) => waiters.push(resolve));

  /** Round robin over the members in join order, as kafkajs's default assigner does. */
  const rebalance = (group: Group) => {
    group.members.forEach((member, index) => {
      const assigned = new Set(
        logs.map((_, partition) => partition).filter((p) => p % group.members.length === index),
      );
      for (const partition of [...member.positions.keys()]) {
        if (!assigned.has(partition)) member.positions.delete(partition);
      }
      for (const partition of assigned) {
        if (member.positions.has(partition)) continue;
        const log = logs[partition] as StoredRecord[];
        member.positions.set(
          partition,
          group.committed.get(partition) ?? (member.fromBeginning ? 0 : log.length),
        );
      }
    });
    appended();
  };

  /** Fetches of a failing batch before kafkajs's runner gives up and the consumer crashes. */
  const RUNNER_RETRIES = 5;
  /** The turn of the event loop that kafkajs's retry timers give, without their delays. */
  const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

  let consumerCount = 0;
  const consumer = (config: { groupId: string }) => {
    const name = `consumer#${++consumerCount}(${config.groupId})`;
    let topic = "";
    let fromBeginning = false;
    let running = false;
    let loop: Promise<void> | undefined;
    let member: Member | undefined;
    const crashListeners: ((event: { payload: Record<string, unknown> }) => void)[] = [];
    return {
      events: { CRASH: "consumer.crash" },
      on(event: string, listener: (event: { payload: Record<string, unknown> }) => void) {
        if (event === "consumer.crash") crashListeners.push(listener);
      },
      async connect() {
        if (!available) throw new KafkaJSConnectionError("Connection error: connect ECONNREFUSED");
      },
      async subscribe(subscription: { topic: string; fromBeginning?: boolean }) {
        topic = subscription.topic;
        fromBeginning = subscription.fromBeginning ?? false;
      },
      async run(options: {
        eachBatch: (payload: EachBatchPayload) => Promise<void>;
        eachBatchAutoResolve?: boolean;
        autoCommit?: boolean;
      }) {
        const group: Group = groups.get(config.groupId) ?? { members: [], committed: new Map() };
        groups.set(config.groupId, group);
        const joined: Member = { name, fromBeginning, positions: new Map(), generation: 0 };
        member = joined;
        group.members.push(joined);
        rebalance(group);
        journal.push(`${name} joined`);
        running = true;
        const autoResolve = options.eachBatchAutoResolve ?? true;
        const commits = options.autoCommit ?? true;
        let failedInARow = 0;
        /** kafkajs's onCrash: disconnect (leaving the group), CRASH, then start and join again. */
        const crash = (err: Error) => {
          failedInARow = 0;
          group.members = group.members.filter((m) => m !== joined);
          rebalance(group);
          journal.push(`${name} crashed`, `${name} left`);
          const error = retriesExhausted(err);
          for (const listener of crashListeners) {
            listener({ payload: { error, groupId: config.groupId, restart: true } });
          }
          joined.positions.clear();
          joined.generation += 1;
          group.members.push(joined);
          rebalance(group);
          journal.push(`${name} joined`);
        };
        loop = (async () => {
          while (running) {
            let handed = false;
            for (const [partition, position] of joined.positions) {
              const log = logs[partition] as StoredRecord[];
              if (position >= log.length || !running) continue;
              handed = true;
              const records = log.slice(position, position + 100);
              const generation = joined.generation;
              let resolved = position - 1;
              let failed: Error | undefined;
              const messages = records.map((r) => ({
                key: Buffer.from(r.key),
                value: Buffer.from(r.value),
                headers: Object.fromEntries(
                  Object.entries(r.headers).map(([k, v]) => [k, Buffer.from(v)]),
                ) as IHeaders,
                offset: String(r.offset),
                timestamp: "0",
                attributes: 0,
              }));
              const autoCommit = () => {
                if (commits && resolved >= 0) group.committed.set(partition, resolved + 1);
              };
              try {
                await options.eachBatch({
                  batch: { topic, partition, messages },
                  resolveOffset: (offset: string) => {
                    resolved = Math.max(resolved, Number(offset));
                  },
                  heartbeat: async () => {
                    heartbeats += 1;
                  },
                  commitOffsetsIfNecessary: async () => {},
                  isRunning: () => running,
                  // Only a seek makes a batch stale, and the fake has none.
                  isStale: () => false,
                } as unknown as EachBatchPayload);
                if (autoResolve) resolved = (records.at(-1) as StoredRecord).offset;
                autoCommit();
                failedInARow = 0;
              } catch (err) {
                // kafkajs commits what was resolved, then fetches again from there.
                autoCommit();
                journal.push(`${name} batch failed: ${(err as Error).message}`);
                failed = err as Error;
              }
              if (joined.positions.has(partition) && joined.generation === generation) {
                joined.positions.set(partition, resolved + 1);
              }
              if (failed) {
                failedInARow += 1;
                if (failedInARow > RUNNER_RETRIES && running) crash(failed);
                await nextTurn();
                // The runner's retry starts the fetch over.
                break;
              }
            }
            if (!handed && running) await nextChange();
            else await Promise.resolve();
          }
        })();
      },
      async disconnect() {
        if (!running) return;
        running = false;
        appended();
        await loop;
        const group = groups.get(config.groupId);
        if (group && member) {
          group.members = group.members.filter((m) => m !== member);
          rebalance(group);
        }
        journal.push(`${name} left`);
      },
    };
  };

  return {
    kafka: { producer, admin, consumer } as unknown as Kafka,
    /** The groups the broker knows, with how many members each has. */
    groups: () => new Map([...groups].map(([id, g]) => [id, g.members.length])),
    /** A group's committed offsets: partition -> the next offset to read. */
    committed: (groupId: string) => new Map(groups.get(groupId)?.committed),
    /** How often `eachBatch` called `heartbeat()`, every consumer together. */
    heartbeats: () => heartbeats,
    journal,
    /**
     * The group rejoins, as kafkajs does after a session timeout, a coordinator move or new
     * partitions: every member starts over from the group's committed offsets, or without one
     * from its default (consumerGroup.js sync makes a new OffsetManager each time).
     */
    rejoin(groupId: string) {
      const group = groups.get(groupId);
      if (!group) throw new Error(`no group ${groupId}`);
      for (const member of group.members) {
        member.positions.clear();
        member.generation += 1;
      }
      rebalance(group);
    },
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
