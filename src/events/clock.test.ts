import { describe, expect, test } from "bun:test";
import { createManualClock, systemClock } from "./clock.ts";

describe("manual clock", () => {
  test("sleeps end when time is advanced past them, earliest first", async () => {
    const clock = createManualClock(1000);
    const woken: number[] = [];
    void clock.sleep(20).then(() => woken.push(20));
    void clock.sleep(10).then(() => woken.push(10));
    clock.advance(15);
    await Promise.resolve();
    expect(woken).toEqual([10]);
    expect(clock.pending()).toEqual([20]);
    clock.advance(5);
    await Promise.resolve();
    expect(woken).toEqual([10, 20]);
    expect(clock.now()).toBe(1020);
  });

  test("an abort ends a sleep at once, without moving time", async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const sleep = clock.sleep(1_000, controller.signal);
    controller.abort();
    await sleep;
    expect(clock.now()).toBe(0);
    expect(clock.pending()).toEqual([]);
  });

  test("tick moves to the next wake-up and waits for the next sleep", async () => {
    const clock = createManualClock();
    const loop = (async () => {
      for (const ms of [5, 7]) await clock.sleep(ms);
      await clock.sleep(1_000);
    })();
    expect(await clock.tick()).toBe(5);
    expect(await clock.tick()).toBe(7);
    expect(clock.requested).toEqual([5, 7, 1_000]);
    clock.advance(1_000);
    await loop;
  });

  test("tick does not move to a sleep that its abort ended before tick looked", async () => {
    const clock = createManualClock();
    const ticking = clock.tick();
    // A publish answered before its deadline: the deadline's sleep starts and ends at once.
    const answered = new AbortController();
    void clock.sleep(15_000, answered.signal);
    answered.abort();
    await new Promise((resolve) => setImmediate(resolve));
    void clock.sleep(1_000).then(() => clock.sleep(1_000));
    expect(await ticking).toBe(1_000);
    expect(clock.now()).toBe(1_000);
  });

  test("auto: sleeps return at once and move time", async () => {
    const clock = createManualClock(0, { auto: true });
    await clock.sleep(50);
    await clock.sleep(100);
    expect(clock.now()).toBe(150);
  });
});

describe("system clock", () => {
  test("an aborted sleep returns without waiting for its timer", async () => {
    const controller = new AbortController();
    const sleep = systemClock.sleep(60_000, controller.signal);
    controller.abort();
    await sleep; // a test timeout here means the abort was ignored
    await systemClock.sleep(60_000, AbortSignal.abort());
  });
});
