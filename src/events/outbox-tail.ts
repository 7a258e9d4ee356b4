/**
 * The outbox tail: the one source of a process' live events (live-events.ts). It reads the
 * published outbox rows by `published_seq`, after the last number it handed out, and hands them
 * on in that order, so every replica delivers the same events in the same order (publication
 * order), whatever order its wake-ups came in, and a copy of a record cannot reach a watcher.
 *
 * What wakes it does not matter beyond the waking: a record from this process' Kafka feed group,
 * an event on the in-process bus, or the periodic poll, the safety net. The relay hands events to
 * the transport before its transaction commits, so a wake-up can come before the rows are
 * visible: woken by event ids it has not handed out yet, the tail reads again after a short
 * backoff, doubling, until they show up or the backoff reaches the poll interval (the poll then
 * takes over). One read at a time; wake-ups during a read cause one more read after it.
 */
import type { Db } from "../db/client.ts";
import type { Logger } from "../logger.ts";
import { type Clock, systemClock } from "./clock.ts";
import { fromStoredPayload } from "./events.ts";
import type { LiveEvents } from "./live-events.ts";
import { eventsAfterSeq, maxPublishedSeq, type SequencedEvent } from "./outbox.repository.ts";

/** What the tail reads (outbox.repository.ts over the process' database). */
export interface OutboxTailSource {
  /** The largest number given out and committed: where a new tail starts (from now). */
  maxSeq(): Promise<number>;
  /** The published events numbered after `afterSeq`, in number order, at most `limit`. */
  eventsAfter(afterSeq: number, limit: number): Promise<SequencedEvent[]>;
}

export function outboxTailSource(db: Db): OutboxTailSource {
  return {
    maxSeq: () => maxPublishedSeq(db),
    eventsAfter: (afterSeq, limit) => eventsAfterSeq(db, afterSeq, { limit }),
  };
}

export interface OutboxTailOptions {
  source: OutboxTailSource;
  live: LiveEvents;
  logger: Logger;
  /** The poll, the backoff after an early wake-up, and the wait after a failed read. */
  clock?: Clock;
  /** The periodic read when nothing wakes the tail. Default 1 s. */
  pollMs?: number;
  /** The first re-read after a wake-up whose events were not visible yet. Default 10 ms. */
  retryMs?: number;
  /** Rows per read; a full read is followed by another at once. Default 500. */
  batchSize?: number;
}

export interface OutboxTail {
  /** Follows publication from where it stands when the first listener comes. */
  start(): Promise<void>;
  /**
   * Moves to where publication stands now, if no listener kept the tail reading since the last
   * time; resolves once it has (LiveEvents `following`).
   */
  follow(): Promise<void>;
  /** Something was published: read now. `eventIds`: the events that should show up. */
  wake(eventIds?: Iterable<string>): void;
  stop(): Promise<void>;
  /** Reads done so far (for tests). */
  readonly reads: number;
}

const MAX_AWAITED = 10_000;

export function createOutboxTail(options: OutboxTailOptions): OutboxTail {
  const { source, live, logger } = options;
  const clock = options.clock ?? systemClock;
  const pollMs = options.pollMs ?? 1000;
  const retryMs = options.retryMs ?? 10;
  const batchSize = options.batchSize ?? 500;

  let running = false;
  let loop: Promise<void> | undefined;
  let stopper = new AbortController();
  let sleeper: AbortController | undefined;
  let lastSeq = 0;
  let reads = 0;
  /** A wake-up came since the current read began. */
  let woken = false;
  /** Event ids a wake-up announced that no read has returned yet. */
  const awaited = new Set<string>();
  let retryDelay = retryMs;
  let failures = 0;
  /**
   * Set while the tail follows for its listeners. With none it reads nothing (an idle process
   * costs the database nothing), and the next listener makes it move to where publication stands
   * then, so that nobody is handed what was published while nobody listened.
   */
  let followed: Promise<void> | undefined;

  const follow = () => {
    followed ??= source.maxSeq().then(
      (seq) => {
        lastSeq = Math.max(lastSeq, seq);
      },
      (err) => {
        followed = undefined;
        throw err;
      },
    );
    return followed;
  };

  const readAll = async () => {
    for (;;) {
      reads += 1;
      const found = await source.eventsAfter(lastSeq, batchSize);
      for (const row of found) {
        awaited.delete(row.eventId);
        lastSeq = row.seq;
        const event = fromStoredPayload(row.payload);
        if (typeof event === "string") {
          logger.error("outbox row is not a book event; not sent to watchers", {
            seq: row.seq,
            reason: event,
          });
        } else {
          live.publish({ seq: row.seq, event });
        }
      }
      if (found.length < batchSize || !running) return;
    }
  };

  const run = async () => {
    while (running) {
      woken = false;
      if (live.listeners === 0) {
        followed = undefined;
        awaited.clear();
        const controller = new AbortController();
        sleeper = controller;
        await clock.sleep(pollMs, AbortSignal.any([controller.signal, stopper.signal]));
        if (sleeper === controller) sleeper = undefined;
        continue;
      }
      try {
        await follow();
        await readAll();
        if (failures > 0) logger.info("WatchBooks outbox tail recovered", { failures });
        failures = 0;
      } catch (err) {
        failures += 1;
        const fields = { err, retry_in_ms: pollMs };
        if (failures === 1) logger.warn("WatchBooks outbox tail failed to read", fields);
        else logger.debug("WatchBooks outbox tail failed to read", fields);
        // Not cut short by wake-ups: every record during an outage would otherwise read again.
        if (running) await clock.sleep(pollMs, stopper.signal);
        continue;
      }
      if (!running) break;
      if (woken) continue;
      let wait = pollMs;
      if (awaited.size > 0) {
        if (retryDelay < pollMs) {
          wait = retryDelay;
          retryDelay *= 2;
        } else {
          // Long enough: a copy of an event handed on already, or one published before this tail
          // started. Anything still to come, the poll reads.
          awaited.clear();
        }
      }
      const controller = new AbortController();
      sleeper = controller;
      await clock.sleep(wait, AbortSignal.any([controller.signal, stopper.signal]));
      if (sleeper === controller) sleeper = undefined;
    }
  };

  return {
    async start() {
      if (running) return;
      running = true;
      stopper = new AbortController();
      loop = run();
    },
    follow,
    wake(eventIds) {
      let fresh = false;
      for (const id of eventIds ?? []) {
        if (awaited.has(id)) continue;
        // Bounded: ids that never show up (copies) leave only when the backoff runs out.
        if (awaited.size >= MAX_AWAITED) awaited.clear();
        awaited.add(id);
        fresh = true;
      }
      if (fresh) retryDelay = retryMs;
      woken = true;
      sleeper?.abort();
    },
    async stop() {
      running = false;
      stopper.abort();
      await loop;
    },
    get reads() {
      return reads;
    },
  };
}
