/**
 * Time for the event pipeline's loops (relay backoff, stall checks, log rate limits), injected so
 * that tests step through retries and stalls without waiting and without racing real timers.
 */

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`, or as soon as `signal` aborts (never rejects). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener("abort", done, { once: true });
    }),
};

/** A clock that only moves when a test says so. */
export interface ManualClock extends Clock {
  /** Every `sleep` asked for, in order. */
  readonly requested: number[];
  /** The durations of the sleeps still waiting. */
  pending(): number[];
  /** Moves time forward, waking every sleep that is due, earliest first. */
  advance(ms: number): void;
  /** Resolves once at least one sleep is waiting. */
  sleeping(): Promise<void>;
  /**
   * Waits until something sleeps, moves time to the earliest wake-up, then waits until something
   * sleeps again (the woken code went round its loop). Returns the milliseconds moved.
   */
  tick(): Promise<number>;
}

interface Sleeper {
  at: number;
  ms: number;
  wake: () => void;
}

/**
 * `auto`: every sleep resolves at once and moves time by its duration, for code that only needs
 * its waits skipped (a retry helper), not stepped.
 */
export function createManualClock(start = 0, options: { auto?: boolean } = {}): ManualClock {
  let time = start;
  const sleepers: Sleeper[] = [];
  const requested: number[] = [];
  let waiters: (() => void)[] = [];

  const notify = () => {
    const ready = waiters;
    waiters = [];
    for (const resolve of ready) resolve();
  };

  const clock: ManualClock = {
    requested,
    now: () => time,
    sleep(ms, signal) {
      requested.push(ms);
      if (options.auto) {
        time += Math.max(0, ms);
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const sleeper: Sleeper = {
          at: time + Math.max(0, ms),
          ms,
          wake: () => {
            const index = sleepers.indexOf(sleeper);
            if (index >= 0) sleepers.splice(index, 1);
            signal?.removeEventListener("abort", sleeper.wake);
            resolve();
          },
        };
        sleepers.push(sleeper);
        signal?.addEventListener("abort", sleeper.wake, { once: true });
        notify();
      });
    },
    pending: () => sleepers.map((s) => s.ms),
    advance(ms) {
      time += ms;
      const due = sleepers.filter((s) => s.at <= time).sort((a, b) => a.at - b.at);
      for (const sleeper of due) sleeper.wake();
    },
    async sleeping() {
      if (sleepers.length > 0) return;
      await new Promise<void>((resolve) => waiters.push(resolve));
    },
    async tick() {
      // A sleep may end by its abort between the wake-up and this look (a publish answered
      // before its deadline): then wait for the next one.
      do await clock.sleeping();
      while (sleepers.length === 0);
      const next = Math.min(...sleepers.map((s) => s.at));
      const moved = next - time;
      clock.advance(moved);
      await clock.sleeping();
      return moved;
    },
  };
  return clock;
}

/** A background job that `repeat` starts; `stop` ends it after the round under way. */
export interface Repeating {
  start(): void;
  stop(): Promise<void>;
}

/**
 * Runs `round` after `firstAfterMs` (at once when 0), then every `intervalMs` after each round
 * ends, until `stop`, which waits for a round under way. A round that throws goes to `failed`;
 * the next one comes all the same.
 */
export function repeat(
  clock: Clock,
  { firstAfterMs = 0, intervalMs }: { firstAfterMs?: number; intervalMs: number },
  round: () => Promise<unknown>,
  failed: (err: unknown) => void,
): Repeating {
  let running: { stop: AbortController; loop: Promise<void> } | undefined;
  return {
    start() {
      if (running) return;
      const stop = new AbortController();
      const loop = (async () => {
        if (firstAfterMs > 0) await clock.sleep(firstAfterMs, stop.signal);
        while (!stop.signal.aborted) {
          await round().catch(failed);
          await clock.sleep(intervalMs, stop.signal);
        }
      })();
      running = { stop, loop };
    },
    async stop() {
      if (!running) return;
      running.stop.abort();
      await running.loop;
      running = undefined;
    },
  };
}
