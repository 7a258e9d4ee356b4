import { describe, expect, test } from "bun:test";
import { capturingLogger } from "../testing/logger.ts";
import { createManualClock, type ManualClock } from "./clock.ts";
import { type BatchSession, DATABASE_BACKOFF, handleWhenDatabaseAnswers } from "./database-wait.ts";
import { databaseDownError } from "./test-events.ts";

/** A handler that fails with `errors` in turn, then succeeds; notes the time of each call. */
function failingHandler(clock: ManualClock, errors: Error[]) {
  const calls: number[] = [];
  return {
    calls,
    handle: async () => {
      calls.push(clock.now());
      const error = errors.shift();
      if (error) throw error;
    },
  };
}

/** A kafkajs batch session that notes when each heartbeat was asked for. */
function session(clock: ManualClock) {
  const state = { running: true, stale: false, heartbeats: [] as number[] };
  const batch: BatchSession = {
    heartbeat: async () => {
      state.heartbeats.push(clock.now());
    },
    isRunning: () => state.running,
    isStale: () => state.stale,
  };
  return { state, batch };
}

/** Moves `clock` to each wake-up in turn until `work` settles; its result. */
async function stepThrough<T>(clock: ManualClock, work: Promise<T>): Promise<T> {
  let settled = false;
  const done = work.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  for (;;) {
    await Promise.race([clock.sleeping(), done]);
    if (settled) return work;
    clock.advance(Math.min(...clock.pending()));
  }
}

const fields = { topic: "petbooks.books", partition: 2, offset: "40" };

/**
 * A batch handled by `handleWhenDatabaseAnswers` on a manual clock, whose handler fails with
 * `errors` in turn; `batch` replaces the session that notes heartbeats.
 */
function started(errors: Error[], batch?: BatchSession) {
  const clock = createManualClock();
  const { logger, lines } = capturingLogger();
  const handler = failingHandler(clock, errors);
  const { state, batch: noting } = session(clock);
  const stopping = new AbortController();
  const handling = handleWhenDatabaseAnswers(handler.handle, batch ?? noting, {
    clock,
    logger,
    stopping: stopping.signal,
    fields,
  });
  return { clock, lines, handler, state, stopping, handling };
}

/** More failures than any test waits through. */
const databaseDown = () => Array.from({ length: 100 }, databaseDownError);

describe("handleWhenDatabaseAnswers", () => {
  test("tries again while the database is unavailable, 200 ms doubling up to 10 s, heartbeating", async () => {
    const { clock, lines, handler, state, handling } = started(
      Array.from({ length: 9 }, databaseDownError),
    );
    const handled = await stepThrough(clock, handling);
    expect(handled).toBe(true);
    const waits = handler.calls.slice(1).map((at, i) => at - (handler.calls[i] as number));
    expect(waits).toEqual([200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000, 10_000]);
    // No step longer than the check interval, and a heartbeat after each: the session lives on.
    expect(Math.max(...clock.requested)).toBe(DATABASE_BACKOFF.checkEveryMs);
    const gaps = state.heartbeats.slice(1).map((at, i) => at - (state.heartbeats[i] as number));
    expect(state.heartbeats[0]).toBe(0);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(DATABASE_BACKOFF.checkEveryMs);
    expect(state.heartbeats.at(-1)).toBe(handler.calls.at(-1));
    // One line when the wait starts, one when it ends.
    expect(lines).toEqual([
      expect.objectContaining({
        level: "warn",
        msg: "database unavailable; holding the event batch until it answers",
        ...fields,
      }),
      expect.objectContaining({
        level: "info",
        msg: "database answers again; event batch handled",
        failed_attempts: 9,
        waited_ms: 42_600,
        ...fields,
      }),
    ]);
  });

  test("a connection refused for good under a running consumer (the password changed) is held too", async () => {
    const refused = Object.assign(new Error("password authentication failed"), {
      code: "28P01",
      severity: "FATAL",
    });
    const { clock, handler, handling } = started([refused, refused]);
    expect(await stepThrough(clock, handling)).toBe(true);
    expect(handler.calls).toEqual([0, 200, 600]);
  });

  test.each([
    ["any other error", new Error("column does not exist")],
    [
      "a statement's own failure (a unique violation)",
      Object.assign(new Error("duplicate key value"), { code: "23505", severity: "ERROR" }),
    ],
  ])("%s is thrown at once, as before", async (_, error) => {
    const { clock, lines, handler, state, handling } = started([error]);
    expect(await handling.catch((e: unknown) => e)).toBe(error);
    expect(handler.calls).toEqual([0]);
    expect(clock.requested).toEqual([]);
    expect(state.heartbeats).toEqual([]);
    expect(lines).toEqual([]);
  });

  test("a heartbeat refused because the group rebalances is thrown, for kafkajs to rejoin", async () => {
    const rebalancing = new Error("The group is rebalancing, so a rejoin is needed");
    const { handler, handling } = started(databaseDown(), {
      heartbeat: () => Promise.reject(rebalancing),
      isRunning: () => true,
      isStale: () => false,
    });
    expect(await handling.catch((e: unknown) => e)).toBe(rebalancing);
    expect(handler.calls).toEqual([0]);
  });

  test("a stop ends the wait at once: nothing handled, no further try", async () => {
    const { clock, lines, handler, stopping, handling } = started(databaseDown());
    await clock.sleeping();
    stopping.abort();
    expect(await handling).toBe(false);
    expect(clock.now()).toBe(0);
    expect(handler.calls).toEqual([0]);
    expect(lines.map((l) => l.msg)).toEqual([
      "database unavailable; holding the event batch until it answers",
      "stopped waiting for the database; the event batch will be delivered again",
    ]);
  });

  test.each([
    ["kafkajs stops the consumer", (s: { running: boolean }) => (s.running = false)],
    ["a seek makes the batch stale", (s: { stale: boolean }) => (s.stale = true)],
  ])("the wait ends within a check interval when %s", async (_, change) => {
    const { clock, handler, state, handling } = started(databaseDown());
    // Into the long waits: 200 + 400 + 800 + 1,600 ms, then a wait of 3.2 s.
    while (handler.calls.length < 5) {
      await clock.sleeping();
      clock.advance(Math.min(...clock.pending()));
      await Promise.resolve();
    }
    await clock.sleeping();
    const stoppedAt = clock.now();
    change(state);
    expect(await stepThrough(clock, handling)).toBe(false);
    expect(clock.now() - stoppedAt).toBeLessThanOrEqual(DATABASE_BACKOFF.checkEveryMs);
    expect(handler.calls).toHaveLength(5);
  });
});
