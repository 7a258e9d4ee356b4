/**
 * The outbox relay: claims pending events, marking them published in a transaction that commits
 * only after the transport took them. While the transport fails it backs off and tries again;
 * events stay pending, so none is lost and writes never wait for the broker.
 */
import type { Db } from "../db/client.ts";
import type { Logger } from "../logger.ts";
import { retry } from "../retry.ts";
import type { EventTransport } from "./events.ts";
import { claimBatch, deletePublishedBefore } from "./outbox.repository.ts";

export interface RelayOptions {
  db: Db;
  transport: EventTransport;
  logger: Logger;
  batchSize?: number;
  /** How long to wait for new events when there are none (a nudge wakes it sooner). */
  idleMs?: number;
  /**
   * After a nudge, how long to let further writes commit before claiming, so that under load one
   * relay transaction publishes many events instead of one per write (Kafka's linger.ms).
   */
  lingerMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  retentionHours?: number;
  cleanupEveryMs?: number;
  /** Rows a cleanup statement looks at; a cleanup repeats while whole batches go. */
  cleanupBatchSize?: number;
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
}

export function createOutboxRelay(options: RelayOptions): OutboxRelay {
  const { db, transport, logger } = options;
  const batchSize = options.batchSize ?? 500;
  const idleMs = options.idleMs ?? 500;
  const lingerMs = options.lingerMs ?? 5;
  const initialBackoffMs = options.initialBackoffMs ?? 200;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  const retentionMs = (options.retentionHours ?? 24) * 3_600_000;
  const cleanupEveryMs = options.cleanupEveryMs ?? 60_000;
  const cleanupBatchSize = options.cleanupBatchSize ?? 10_000;

  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let nudged = false;
  let lastCleanup = 0;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  const runOnce = () =>
    db.transaction(async (tx) => {
      const events = await claimBatch(tx, batchSize);
      if (events.length === 0) return 0;
      await retry(() => transport.publish(events.map((e) => e.payload)), {
        name: `publish to ${transport.name}`,
        times: 3,
        delayMs: 50,
        exponential: true,
        logger,
      });
      return events.length;
    });

  const drain = async () => {
    let total = 0;
    for (let n = await runOnce(); n > 0; n = await runOnce()) total += n;
    return total;
  };

  const cleanUp = async () => {
    if (Date.now() - lastCleanup < cleanupEveryMs) return;
    lastCleanup = Date.now();
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
        const published = await runOnce();
        backoff = initialBackoffMs;
        if (published > 0)
          logger.debug("events published", { count: published, transport: transport.name });
        await cleanUp();
        if (published < batchSize && running) {
          if (!nudged) await sleep(idleMs);
          if (nudged && running && lingerMs > 0) await Bun.sleep(lingerMs);
          nudged = false;
        }
      } catch (err) {
        logger.warn("event relay failed; events stay pending", {
          transport: transport.name,
          retry_in_ms: backoff,
          err,
        });
        if (running) await sleep(backoff);
        backoff = Math.min(backoff * 2, maxBackoffMs);
      }
    }
  };

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    nudge() {
      nudged = true;
      wake?.();
    },
    runOnce,
    drain,
    async stop() {
      running = false;
      wake?.();
      await loop;
    },
  };
}
