import { describe, expect, test } from "bun:test";
import { RetryLaterError } from "../errors.ts";
import {
  argon2idHasher,
  createHashQueue,
  defaultHashQueueOptions,
  HASHING_BUSY,
  type PasswordHasher,
} from "./hash-queue.ts";

/** A hasher whose every call waits until the test finishes it, in any order. */
function heldHasher() {
  const held: { password: string; finish: (ok?: boolean) => void; fail: (e: Error) => void }[] = [];
  const hold = (password: string) =>
    new Promise<boolean>((resolve, reject) => {
      held.push({ password, finish: (ok = true) => resolve(ok), fail: reject });
    });
  const hasher: PasswordHasher = {
    hash: async (password) => `${await hold(password)}:${password}`,
    verify: (password) => hold(password),
  };
  return { hasher, held };
}

/** Timers fired by hand. */
function manualTimers() {
  const timers = new Map<number, { fire: () => void; ms: number }>();
  let next = 0;
  return {
    setTimer(fire: () => void, ms: number) {
      const id = next++;
      timers.set(id, { fire, ms });
      return () => timers.delete(id);
    },
    pending: () => [...timers.values()].map((t) => t.ms),
    fireAll() {
      const due = [...timers.values()];
      timers.clear();
      for (const t of due) t.fire();
    },
  };
}

const settle = <T>(promise: Promise<T>) =>
  promise.then(
    (value) => ({ value, error: undefined }),
    (error: unknown) => ({ value: undefined, error }),
  );

const tick = () => Bun.sleep(0);

describe("the hash queue", () => {
  test("runs at most `concurrency` at once, the others in arrival order", async () => {
    const { hasher, held } = heldHasher();
    const timers = manualTimers();
    const queue = createHashQueue({
      concurrency: 2,
      maxQueued: 10,
      maxWaitMs: 5_000,
      setTimer: timers.setTimer,
    });
    const calls = ["a", "b", "c", "d"].map((p) => queue.run(() => hasher.verify(p, "h")));
    await tick();
    expect(held.map((h) => h.password)).toEqual(["a", "b"]);
    expect(queue.load()).toEqual({ running: 2, queued: 2 });
    held[1]?.finish(false);
    await tick();
    expect(held.map((h) => h.password)).toEqual(["a", "b", "c"]);
    held[0]?.finish();
    held[2]?.finish();
    await tick();
    held[3]?.finish();
    expect(await Promise.all(calls)).toEqual([true, false, true, true]);
    expect(queue.load()).toEqual({ running: 0, queued: 0 });
    // A hash that started cancelled its wait.
    expect(timers.pending()).toEqual([]);
  });

  test("a full queue refuses at once: 503 with Retry-After, nothing piles up", async () => {
    const { hasher, held } = heldHasher();
    const queue = createHashQueue({
      concurrency: 1,
      maxQueued: 1,
      maxWaitMs: 2_500,
      setTimer: manualTimers().setTimer,
    });
    const running = queue.run(() => hasher.hash("a"));
    const waiting = queue.run(() => hasher.hash("b"));
    const refused = await settle(queue.run(() => hasher.hash("c")));
    expect(refused.error).toBeInstanceOf(RetryLaterError);
    expect(refused.error).toMatchObject({
      code: "unavailable",
      message: HASHING_BUSY,
      retryAfterSeconds: 3,
    });
    await tick();
    expect(held.map((h) => h.password)).toEqual(["a"]);
    held[0]?.finish();
    await tick();
    held[1]?.finish();
    expect(await Promise.all([running, waiting])).toEqual(["true:a", "true:b"]);
  });

  test("a hash that waits longer than maxWaitMs is refused, and never runs", async () => {
    const { hasher, held } = heldHasher();
    const timers = manualTimers();
    const queue = createHashQueue({
      concurrency: 1,
      maxQueued: 5,
      maxWaitMs: 1_000,
      setTimer: timers.setTimer,
    });
    const running = queue.run(() => hasher.verify("a", "h"));
    const waiting = settle(queue.run(() => hasher.verify("b", "h")));
    expect(timers.pending()).toEqual([1_000]);
    timers.fireAll();
    expect((await waiting).error).toMatchObject({ code: "unavailable", retryAfterSeconds: 1 });
    expect(queue.load()).toEqual({ running: 1, queued: 0 });
    held[0]?.finish();
    expect(await running).toBe(true);
    await tick();
    expect(held.map((h) => h.password)).toEqual(["a"]);
  });

  test("a failing hash frees its place for the next", async () => {
    const { hasher, held } = heldHasher();
    const queue = createHashQueue({
      concurrency: 1,
      maxQueued: 5,
      maxWaitMs: 1_000,
      setTimer: manualTimers().setTimer,
    });
    const first = settle(queue.run(() => hasher.verify("a", "h")));
    const second = queue.run(() => hasher.verify("b", "h"));
    await tick();
    held[0]?.fail(new Error("boom"));
    expect((await first).error).toMatchObject({ message: "boom" });
    await tick();
    held[1]?.finish();
    expect(await second).toBe(true);
  });

  test("defaults: one hash per core, 16 waiting per core, 5 s", () => {
    const { concurrency, maxQueued, maxWaitMs } = defaultHashQueueOptions();
    expect(concurrency).toBeGreaterThanOrEqual(1);
    expect(maxQueued).toBe(16 * concurrency);
    expect(maxWaitMs).toBe(5_000);
  });
});

test("argon2id hashes verify, and only with their password", async () => {
  const hash = await argon2idHasher.hash("correct horse");
  expect(hash).toStartWith("$argon2id$");
  expect(await argon2idHasher.verify("correct horse", hash)).toBe(true);
  expect(await argon2idHasher.verify("correct horsf", hash)).toBe(false);
}, 30_000);
