/**
 * Retries photo removals that failed after their rows were deleted (the bucket or the disk was
 * briefly away): they wait in `pending_object_deletions`, and every `serve` sweeps the due ones
 * on a timer, backing off per file. Removing twice is harmless, so replicas need no coordination.
 */

import { type Clock, repeat, systemClock } from "../events/clock.ts";
import type { Logger } from "../logger.ts";
import type { ObjectDeletionsRepository } from "./object-deletions.repository.ts";
import type { PhotoStorage } from "./photo-storage.ts";
import { errorSummary } from "./storage-errors.ts";

export interface ObjectDeletionSweeperOptions {
  repository: ObjectDeletionsRepository;
  storage: Pick<PhotoStorage, "remove">;
  logger: Logger;
  clock?: Clock;
  /** Time between sweeps. */
  intervalMs?: number;
  /** Files tried per sweep. */
  batchSize?: number;
  /** Wait before the first retry of a file, doubled after each failure up to `maxDelayMs`. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export const SWEEP_INTERVAL_MS = 60_000;
const BASE_DELAY_MS = 60_000;
const MAX_DELAY_MS = 3_600_000;

export function createObjectDeletionSweeper(options: ObjectDeletionSweeperOptions) {
  const {
    repository,
    storage,
    logger,
    clock = systemClock,
    intervalMs = SWEEP_INTERVAL_MS,
    batchSize = 100,
    baseDelayMs = BASE_DELAY_MS,
    maxDelayMs = MAX_DELAY_MS,
  } = options;

  /** The wait after the `failures`-th failed retry: twice the one before, up to the cap. */
  const delayAfter = (failures: number) => Math.min(baseDelayMs * 2 ** failures, maxDelayMs);

  const sweeper = {
    /** Notes files whose removal just failed; the first retry comes after `baseDelayMs`. */
    async deferRemovals(fileNames: string[], err: unknown): Promise<void> {
      await repository.record(fileNames, errorSummary(err), new Date(clock.now() + baseDelayMs));
    },

    /** Tries the due removals once; says how many went and how many failed again. */
    async sweepOnce(): Promise<{ removed: number; failed: number }> {
      const due = await repository.due(new Date(clock.now()), batchSize);
      let removed = 0;
      let failed = 0;
      for (const { fileName, attempts } of due) {
        try {
          await storage.remove(fileName);
          await repository.done(fileName);
          removed++;
        } catch (err) {
          failed++;
          const next = new Date(clock.now() + delayAfter(attempts + 1));
          await repository.failed(fileName, attempts + 1, next, errorSummary(err));
        }
      }
      if (removed > 0) logger.info("removed photo files left by failed removals", { removed });
      if (failed > 0)
        logger.warn("photo files still cannot be removed; retrying later", { failed });
      return { removed, failed };
    },

    /** Sweeps now, then every `intervalMs`, until `stop`. */
    ...repeat(
      clock,
      { intervalMs },
      async () => {
        await sweeper.sweepOnce();
      },
      (err) => logger.warn("photo removal sweep failed", { err: errorSummary(err) }),
    ),
  };
  return sweeper;
}

export type ObjectDeletionSweeper = ReturnType<typeof createObjectDeletionSweeper>;
