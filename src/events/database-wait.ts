/**
 * Holding a Kafka batch while the database is unavailable. Thrown back to kafkajs, such a failure
 * makes its runner fetch the batch again a few times and then crash the consumer, which leaves the
 * group and joins it again: every replica's partitions are reassigned, again and again for as long
 * as the outage lasts. Held, the batch is tried again after a backoff, the consumer keeps its
 * partitions, and its heartbeats keep the group session alive meanwhile.
 */
import { isDatabaseOutage } from "../db/errors.ts";
import type { Logger } from "../logger.ts";
import type { Clock } from "./clock.ts";

/** What kafkajs's `eachBatch` payload tells about the batch in hand. */
export interface BatchSession {
  heartbeat(): Promise<void>;
  isRunning(): boolean;
  /** The partition was moved by a seek: the batch in hand is no longer what comes next. */
  isStale(): boolean;
}

export interface DatabaseWaitOptions {
  clock: Clock;
  logger: Logger;
  /** Aborted when the consumer stops: the wait ends at once. */
  stopping: AbortSignal;
  /** Where the batch comes from, for the log lines. */
  fields: Record<string, unknown>;
}

/**
 * Backoff between tries: 200 ms doubling up to 10 s. The wait is cut into steps of `checkEveryMs`
 * so that a heartbeat goes out well within the group's 10 s session (kafkajs sends one only once
 * its `heartbeatInterval` has passed, so calling more often costs nothing) and a stop or a seek is
 * noticed within a second.
 */
export const DATABASE_BACKOFF = { firstMs: 200, maxMs: 10_000, checkEveryMs: 1_000 } as const;

/**
 * Runs `handle` until it succeeds (true); while it fails because the database is unavailable
 * (db/errors.ts), tries again after a backoff. False when the consumer stops or the batch goes
 * stale before the database answers: the caller then resolves nothing, so nothing is committed
 * and the batch is delivered again. Any other error is thrown at once, as before, and so is a
 * failed heartbeat (the group is rebalancing: kafkajs rejoins, with nothing of the batch resolved).
 */
export async function handleWhenDatabaseAnswers(
  handle: () => Promise<void>,
  session: BatchSession,
  options: DatabaseWaitOptions,
): Promise<boolean> {
  const { clock, logger, stopping, fields } = options;
  const keepsBatch = () => !stopping.aborted && session.isRunning() && !session.isStale();

  /** Waits `ms`, heartbeating; false as soon as the batch is no longer this consumer's to handle. */
  const pause = async (ms: number): Promise<boolean> => {
    for (let left = ms; ; ) {
      if (!keepsBatch()) return false;
      await session.heartbeat();
      if (left <= 0) return true;
      const step = Math.min(left, DATABASE_BACKOFF.checkEveryMs);
      await clock.sleep(step, stopping);
      left -= step;
    }
  };

  let delay: number = DATABASE_BACKOFF.firstMs;
  let failedAt: number | undefined;
  let failures = 0;
  for (;;) {
    try {
      await handle();
      if (failedAt !== undefined) {
        logger.info("database answers again; event batch handled", {
          ...fields,
          failed_attempts: failures,
          waited_ms: clock.now() - failedAt,
        });
      }
      return true;
    } catch (err) {
      if (!isDatabaseOutage(err)) throw err;
      failures += 1;
      // One line when the wait starts and one when it ends, not one per try.
      if (failedAt === undefined) {
        failedAt = clock.now();
        logger.warn("database unavailable; holding the event batch until it answers", {
          ...fields,
          err,
        });
      }
    }
    if (!(await pause(delay))) {
      logger.info("stopped waiting for the database; the event batch will be delivered again", {
        ...fields,
        failed_attempts: failures,
      });
      return false;
    }
    delay = Math.min(delay * 2, DATABASE_BACKOFF.maxMs);
  }
}
