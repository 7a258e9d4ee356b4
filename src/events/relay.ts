/**
 * The outbox relay: claims pending events, marking them published in a transaction that commits
 * only after the transport took them. While the transport fails it backs off and tries again;
 * events stay pending, so none is lost and writes never wait for the broker. A stall check, on its
 * own timer so that a publish hanging for minutes cannot silence it, says when the oldest pending
 * event has waited longer than `stallSeconds`. A publish gets `publishTimeoutMs`: the relay's
 * transaction holds the publication lock that every other relay needs, so it is never held for as
 * long as kafkajs would go on retrying a send.
 */
import type { Db } from "../db/client.ts";
import type { Logger } from "../logger.ts";
import type { RelayMetrics } from "../observability/pipeline-metrics.ts";
import { retryable } from "../retry.ts";
import { type Clock, systemClock } from "./clock.ts";
import { type BookEvent, type EventTransport, fromStoredPayload } from "./events.ts";
import {
  claimBatch,
  deletePublishedBefore,
  LOCKED_OUT,
  oldestPendingAgeSeconds,
  type PendingEvent,
} from "./outbox.repository.ts";

export interface RelayOptions {
  db: Db;
  transport: EventTransport;
  logger: Logger;
  batchSize?: number;
  /** How long to wait for new events when there are none (a nudge wakes it sooner). */
  idleMs?: number;
  /**
   * How soon to claim again while another relay holds the publication lock (outbox.repository.ts
   * `claimBatch`): the holder may be about to go idle with this replica's events still pending.
   */
  lockedOutRetryMs?: number;
  /**
   * After a nudge, how long to let further writes commit before claiming, so that under load one
   * relay transaction publishes many events instead of one per write (Kafka's linger.ms).
   */
  lingerMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * How long to wait for the transport to take a batch. Past it the relay stops waiting: its
   * transaction rolls back, so the events stay pending and the publication lock and the connection
   * are free, and the failure backoff follows. The send may still land later: a copy, which
   * consumers drop. Default 15 s ({@link DEFAULT_PUBLISH_TIMEOUT_MS}); Infinity waits for ever.
   */
  publishTimeoutMs?: number;
  retentionHours?: number;
  cleanupEveryMs?: number;
  /** Rows a cleanup statement looks at; a cleanup repeats while whole batches go. */
  cleanupBatchSize?: number;
  /**
   * The outbox is stalled while its oldest pending event is older than this: one error line per
   * this many seconds while it lasts, and `health()` says so. Default 60.
   */
  stallSeconds?: number;
  /** How often the stall check reads the oldest pending event. Default: stallSeconds/2, ≤ 10 s. */
  stallCheckMs?: number;
  /** Time for the loop: polls, linger, backoff and the publish retries. Default: the real one. */
  clock?: Clock;
  /** Time for the stall check; `clock` when absent (tests step the two separately). */
  monitorClock?: Clock;
  /** Records each batch attempt (observability/pipeline-metrics.ts); none: nothing recorded. */
  metrics?: RelayMetrics | undefined;
  /** Sees each claimed batch before it is published (tracing: the writers' trace contexts). */
  onClaimed?: ((events: PendingEvent[]) => void) | undefined;
}

export interface OutboxHealth {
  /** `stalled` while the oldest pending event is older than `stallSeconds`. */
  status: "ok" | "stalled";
  /** At the last check; null when nothing was pending (or before the first check). */
  oldestPendingSeconds: number | null;
  stallSeconds: number;
  /** Relay runs failed in a row (0 once one succeeds). */
  consecutiveFailures: number;
  /** Producers the transport replaced since it started (Kafka only, else 0). */
  producerRecreations: number;
}

export interface OutboxRelay {
  start(): void;
  /** A write committed: look for events now instead of at the next poll. */
  nudge(): void;
  /** Publishes one batch; the count published. For tests and benchmarks. */
  runOnce(): Promise<number>;
  /** Publishes until nothing is pending (or a failure); the count published. */
  drain(): Promise<number>;
  stop(): Promise<void>;
  health(): OutboxHealth;
}

/**
 * A healthy send (acks=all) is answered in milliseconds, and a leader election, which kafkajs
 * rides out by itself (retries after about 0.3, 0.6, 1.2, 2.4 s…), in seconds. Past 15 s the broker
 * is not answering, and kafkajs would go on for up to its requestTimeout (30 s) per attempt, 1 +
 * SEND_RETRIES (kafka.ts) attempts, plus its backoff: about 3 minutes of every other replica's
 * relay locked out. Well below the stall threshold's default (60 s), so a stalled broker shows as
 * failed runs first.
 */
export const DEFAULT_PUBLISH_TIMEOUT_MS = 15_000;

/** The transport did not take a batch within the relay's `publishTimeoutMs`. */
export class PublishTimeoutError extends Error {
  override name = "PublishTimeoutError";
  constructor(transport: string, ms: number) {
    super(`publish to ${transport}: no answer within ${ms} ms`);
  }
}

/**
 * `publishing`, or a PublishTimeoutError once `ms` have passed on `clock` without its answer. The
 * send itself cannot be called back; it goes on unobserved.
 */
function withinDeadline(
  publishing: Promise<void>,
  ms: number,
  clock: Clock,
  transport: string,
): Promise<void> {
  if (ms === Number.POSITIVE_INFINITY) return publishing;
  const answered = new AbortController();
  // Ends the deadline's sleep, so no timer (or a manual clock's sleeper) outlives the publish.
  const answer = publishing.finally(() => answered.abort());
  // A late failure of an abandoned publish is no unhandled rejection.
  answer.catch(() => {});
  const expired = new Promise<never>((_, reject) => {
    void clock.sleep(ms, answered.signal).then(() => {
      if (!answered.signal.aborted) reject(new PublishTimeoutError(transport, ms));
    });
  });
  return Promise.race([answer, expired]);
}

/**
 * One batch's publication: claim, publish, mark published, in one transaction. Each attempt
 * claims again: no transaction (on the embedded database, no connection) is held while waiting
 * between attempts, and a retried batch takes in the events written meanwhile. A retry resends
 * the same event ids, which consumers drop as copies.
 */
class BatchPublisher {
  constructor(
    private readonly claimAndPublish: () => Promise<number>,
    readonly transportName: string,
    /** Each attempt is worth a debug line; the run's failure gets the warning. */
    readonly attemptLogger: Logger,
    readonly clock: Clock,
  ) {}

  // Any failure is retried: which of a transport's errors last is the transport's business, and
  // the run loop retries every failure anyway, after backing off; this only rides out a blip. A
  // publish that ran out of time is no blip: tried again at once, it would hold the publication
  // lock for another deadline, so it goes straight to the run's backoff.
  @retryable((p: BatchPublisher, [stopping]: [AbortSignal?]) => ({
    name: `publish to ${p.transportName}`,
    times: 3,
    delayMs: 50,
    exponential: true,
    retryOn: (err) => !(err instanceof PublishTimeoutError),
    logger: p.attemptLogger,
    // `stopping` ends the waits, and the run with them.
    sleep: async (ms) => {
      await p.clock.sleep(ms, stopping);
      if (stopping?.aborted) throw new Error("the relay is stopping");
    },
  }))
  async publish(_stopping?: AbortSignal): Promise<number> {
    return this.claimAndPublish();
  }
}

/** A batch run's count when another relay held the publication lock and nothing was claimed. */
const LOCKED_OUT_COUNT = -1;

export function createOutboxRelay(options: RelayOptions): OutboxRelay {
  const { db, transport, logger } = options;
  const batchSize = options.batchSize ?? 500;
  const idleMs = options.idleMs ?? 500;
  const lockedOutRetryMs = options.lockedOutRetryMs ?? 50;
  const lingerMs = options.lingerMs ?? 5;
  const initialBackoffMs = options.initialBackoffMs ?? 200;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  const publishTimeoutMs = options.publishTimeoutMs ?? DEFAULT_PUBLISH_TIMEOUT_MS;
  const retentionMs = (options.retentionHours ?? 24) * 3_600_000;
  const cleanupEveryMs = options.cleanupEveryMs ?? 60_000;
  const cleanupBatchSize = options.cleanupBatchSize ?? 10_000;
  const stallSeconds = options.stallSeconds ?? 60;
  const stallCheckMs = options.stallCheckMs ?? Math.min(10_000, (stallSeconds * 1000) / 2);
  const clock = options.clock ?? systemClock;
  const monitorClock = options.monitorClock ?? clock;
  const attemptLogger: Logger = { ...logger, warn: (msg, fields) => logger.debug(msg, fields) };
  const producerRecreations = () => transport.stats?.().producerRecreations ?? 0;

  let running = false;
  let loops: Promise<void>[] = [];
  let stopper = new AbortController();
  let wake: AbortController | undefined;
  let nudged = false;
  let lastCleanup = Number.NEGATIVE_INFINITY;

  let failures = 0;
  let oldestPendingSeconds: number | null = null;
  let stalledSince: number | undefined;
  let lastStallLine: number | undefined;

  /** An idle wait that a nudge (or stop) ends early. */
  const idle = async (ms: number) => {
    const controller = new AbortController();
    wake = controller;
    await clock.sleep(ms, AbortSignal.any([controller.signal, stopper.signal]));
    if (wake === controller) wake = undefined;
  };

  /**
   * The event a row stores (the JSON form, whichever version wrote it). A row that is none can
   * never be published: it is logged and marked published with its batch, so it cannot hold up
   * the rows after it.
   */
  const decodedPayload = (row: PendingEvent): BookEvent[] => {
    const event = fromStoredPayload(row.payload);
    if (typeof event !== "string") return [event];
    logger.error("outbox row is not a book event; skipped", { outbox_id: row.id, reason: event });
    return [];
  };

  const claimAndPublish = () =>
    db.transaction(async (tx) => {
      const events = await claimBatch(tx, batchSize);
      if (events === LOCKED_OUT) return LOCKED_OUT_COUNT;
      if (events.length === 0) return 0;
      options.onClaimed?.(events);
      await withinDeadline(
        transport.publish(events.flatMap(decodedPayload)),
        publishTimeoutMs,
        clock,
        transport.name,
      );
      return events.length;
    });
  const metrics = options.metrics;
  const publisher = new BatchPublisher(
    metrics ? () => metrics.timeBatch(claimAndPublish) : claimAndPublish,
    transport.name,
    attemptLogger,
    clock,
  );
  const publishBatch = (stopping?: AbortSignal) => publisher.publish(stopping);

  const runOnce = async () => Math.max(0, await publishBatch());

  const drain = async () => {
    let total = 0;
    for (;;) {
      const n = await publishBatch();
      if (n === LOCKED_OUT_COUNT) await clock.sleep(lockedOutRetryMs);
      else if (n === 0) return total;
      else total += n;
    }
  };

  const cleanUp = async () => {
    if (clock.now() - lastCleanup < cleanupEveryMs) return;
    lastCleanup = clock.now();
    const cutoff = new Date(Date.now() - retentionMs);
    let deleted = 0;
    for (let batch = cleanupBatchSize; batch === cleanupBatchSize && running; ) {
      batch = await deletePublishedBefore(db, cutoff, cleanupBatchSize);
      deleted += batch;
    }
    if (deleted > 0) logger.info("published events cleaned up", { deleted });
  };

  const run = async () => {
    let backoff = initialBackoffMs;
    while (running) {
      try {
        const published = await publishBatch(stopper.signal);
        if (failures > 0) {
          logger.info("event relay recovered", {
            transport: transport.name,
            failed_runs: failures,
            producer_recreations: producerRecreations(),
          });
        }
        failures = 0;
        backoff = initialBackoffMs;
        if (published === LOCKED_OUT_COUNT) {
          if (running) await clock.sleep(lockedOutRetryMs, stopper.signal);
          continue;
        }
        if (published > 0)
          logger.debug("events published", { count: published, transport: transport.name });
        await cleanUp();
        if (published < batchSize && running) {
          if (!nudged) await idle(idleMs);
          if (nudged && running && lingerMs > 0) await clock.sleep(lingerMs, stopper.signal);
          nudged = false;
        }
      } catch (err) {
        if (!running) break;
        failures += 1;
        const fields = {
          transport: transport.name,
          retry_in_ms: backoff,
          consecutive_failures: failures,
          err,
        };
        // One warning when an outage starts; the stall check's error line says when it lasts.
        if (failures === 1) logger.warn("event relay failed; events stay pending", fields);
        else logger.debug("event relay failed; events stay pending", fields);
        // Not cut short by nudges: every write during an outage would otherwise retry at once.
        if (running) await clock.sleep(backoff, stopper.signal);
        backoff = Math.min(backoff * 2, maxBackoffMs);
      }
    }
  };

  const checkStall = async () => {
    let age: number | null;
    try {
      age = await oldestPendingAgeSeconds(db);
    } catch (err) {
      // The database is down: /readyz says so on its own.
      logger.debug("outbox stall check failed", { err });
      return;
    }
    oldestPendingSeconds = age;
    const now = monitorClock.now();
    if (age !== null && age >= stallSeconds) {
      stalledSince ??= now;
      if (lastStallLine === undefined || now - lastStallLine >= stallSeconds * 1000) {
        lastStallLine = now;
        logger.error("outbox stalled: events are not being published", {
          transport: transport.name,
          oldest_pending_seconds: Math.round(age),
          stall_seconds: stallSeconds,
          consecutive_failures: failures,
          producer_recreations: producerRecreations(),
        });
      }
    } else if (stalledSince !== undefined) {
      logger.info("outbox no longer stalled", {
        transport: transport.name,
        stalled_for_seconds: Math.round((now - stalledSince) / 1000),
      });
      stalledSince = undefined;
      lastStallLine = undefined;
    }
  };

  const monitor = async () => {
    while (running) {
      await checkStall();
      if (running) await monitorClock.sleep(stallCheckMs, stopper.signal);
    }
  };

  return {
    start() {
      if (running) return;
      running = true;
      stopper = new AbortController();
      loops = [run(), monitor()];
    },
    nudge() {
      nudged = true;
      wake?.abort();
    },
    runOnce,
    drain,
    async stop() {
      running = false;
      stopper.abort();
      await Promise.all(loops);
    },
    health: () => ({
      status: stalledSince === undefined ? "ok" : "stalled",
      oldestPendingSeconds,
      stallSeconds,
      consecutiveFailures: failures,
      producerRecreations: producerRecreations(),
    }),
  };
}
