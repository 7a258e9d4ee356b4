import { afterAll, describe, expect, test } from "bun:test";
import { createLogger, silentLogger } from "../logger.ts";
import { redisTestPrefix } from "../testing/redis-keys.ts";
import { type OutageMode, startTcpProxy } from "../testing/tcp-proxy.ts";
import { TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { createRedisCounterStore } from "./rate-limit.redis.ts";
import {
  type CounterStore,
  createAuthLimits,
  createMemoryCounterStore,
  createRateLimiter,
} from "./rate-limit.ts";

/** A clock moved by hand: no test here waits for a window to pass. */
function fakeClock(start = 1_767_225_600_000) {
  const clock = { ms: start, now: () => clock.ms };
  return clock;
}

const LIMIT = { limit: 3, windowSeconds: 60 };

/** The limiter's rules, run against each store (Redis only when REDIS_URL is set). */
function limiterRules(name: string, makeStore: () => Promise<CounterStore>) {
  describe(`a limiter on the ${name} store`, () => {
    const stores: CounterStore[] = [];
    const store = async () => {
      const made = await makeStore();
      stores.push(made);
      return made;
    };
    afterAll(async () => {
      for (const s of stores) await s.close();
    }, TEARDOWN_TIMEOUT_MS);

    test("allows `limit` hits per window, then refuses until the window ends", async () => {
      const clock = fakeClock();
      const limiter = createRateLimiter(await store(), "t", LIMIT, clock.now);
      const key = crypto.randomUUID();
      for (let i = 0; i < 3; i++) expect((await limiter.hit(key)).allowed).toBe(true);
      clock.ms += 15_500;
      expect(await limiter.hit(key)).toEqual({ allowed: false, retryAfterSeconds: 45 });
      // Refused hits do not push the window's end out.
      clock.ms += 44_000;
      expect(await limiter.hit(key)).toEqual({ allowed: false, retryAfterSeconds: 1 });
      clock.ms += 500;
      expect(await limiter.hit(key)).toEqual({ allowed: true, retryAfterSeconds: 60 });
    });

    test("keys are counted apart", async () => {
      const clock = fakeClock();
      const limiter = createRateLimiter(await store(), "t", LIMIT, clock.now);
      const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
      for (let i = 0; i < 4; i++) await limiter.hit(a);
      expect((await limiter.hit(b)).allowed).toBe(true);
      expect((await limiter.hit(a)).allowed).toBe(false);
    });

    test("undo takes one hit back; reset forgets them all", async () => {
      const clock = fakeClock();
      const limiter = createRateLimiter(await store(), "t", LIMIT, clock.now);
      const key = crypto.randomUUID();
      for (let i = 0; i < 3; i++) await limiter.hit(key);
      await limiter.undo(key);
      expect((await limiter.hit(key)).allowed).toBe(true);
      expect((await limiter.hit(key)).allowed).toBe(false);
      await limiter.reset(key);
      for (let i = 0; i < 3; i++) expect((await limiter.hit(key)).allowed).toBe(true);
      // Undoing where there is no window starts none.
      const fresh = crypto.randomUUID();
      await limiter.undo(fresh);
      await limiter.undo(fresh);
      for (let i = 0; i < 3; i++) expect((await limiter.hit(fresh)).allowed).toBe(true);
      expect((await limiter.hit(fresh)).allowed).toBe(false);
    });
  });
}

limiterRules("memory", async () => createMemoryCounterStore());

describe("the memory store", () => {
  test("holds a bounded number of keys: ended windows go first, then the oldest", async () => {
    const clock = fakeClock();
    const store = createMemoryCounterStore(3);
    await store.add("old", 1, clock.now(), 1_000);
    await store.add("a", 1, clock.now(), 60_000);
    await store.add("b", 1, clock.now(), 60_000);
    clock.ms += 2_000;
    await store.add("c", 1, clock.now(), 60_000);
    // "old" had ended: "a" and "b" are still counted.
    expect((await store.add("a", 0, clock.now(), 60_000)).count).toBe(1);
    expect((await store.add("b", 0, clock.now(), 60_000)).count).toBe(1);
    await store.add("d", 1, clock.now(), 60_000);
    // Nothing had ended: the oldest, "a", made room.
    expect((await store.add("a", 0, clock.now(), 60_000)).count).toBe(0);
    expect((await store.add("c", 0, clock.now(), 60_000)).count).toBe(1);
  });
});

const redisUrl = process.env.REDIS_URL;
const prefix = () => redisTestPrefix("ratelimit:");
const redisStore = (url: string, keyPrefix: string, logger = silentLogger) =>
  createRedisCounterStore({ url, timeoutMs: 1_000, logger, prefix: keyPrefix });

if (redisUrl) {
  limiterRules("Redis", () => redisStore(redisUrl, prefix()));
}

describe.skipIf(!redisUrl)("Redis-backed limits (REDIS_URL)", () => {
  const url = redisUrl as string;

  test("two replicas count together", async () => {
    const shared = prefix();
    const [one, two] = [await redisStore(url, shared), await redisStore(url, shared)];
    try {
      const clock = fakeClock();
      const replicaA = createAuthLimits(one, undefined, clock.now);
      const replicaB = createAuthLimits(two, undefined, clock.now);
      expect(replicaA.kind).toBe("redis");
      const attempt = { username: "ada" };
      // 10 failures per username: 5 on each replica.
      for (let i = 0; i < 5; i++) {
        await replicaA.admit(attempt);
        await replicaB.admit(attempt);
      }
      await expect(replicaA.admit(attempt)).rejects.toMatchObject({
        code: "too_many_requests",
        retryAfterSeconds: 900,
      });
      await expect(replicaB.admit({ username: "ADA" })).rejects.toMatchObject({
        code: "too_many_requests",
      });
      // A success on one replica forgets the failures for both.
      const admitted = await replicaA.admit({ username: "grace" });
      await admitted.succeeded();
      expect(await replicaB.admit({ username: "grace" })).toBeDefined();
    } finally {
      await one.close();
      await two.close();
    }
  });

  test("keys live under the prefix, expire, and name no username", async () => {
    const keyPrefix = prefix();
    const store = await redisStore(url, keyPrefix);
    const { createClient } = await import("redis");
    const client = createClient({ url });
    await client.connect();
    try {
      const limits = createAuthLimits(store);
      await limits.admit({ address: "203.0.113.5", username: "Secret_Name" });
      const keys = await client.keys(`${keyPrefix}*`);
      expect(keys.sort()).toEqual([
        `${keyPrefix}address:203.0.113.5`,
        expect.stringMatching(new RegExp(`^${keyPrefix}username:[A-Za-z0-9_-]{24}$`)),
      ]);
      expect(keys.join()).not.toMatch(/secret_name/i);
      for (const key of keys) {
        const ttl = await client.pTTL(key);
        expect(ttl).toBeGreaterThan(0);
        // The window plus a minute of slack, at most.
        expect(ttl).toBeLessThanOrEqual(15 * 60_000 + 60_000);
      }
    } finally {
      await client.del(await client.keys(`${keyPrefix}*`));
      await client.quit();
      await store.close();
    }
  });

  test.each<OutageMode>(["refuse", "blackhole"])(
    "an outage (%s) fails open to counting on this replica, with a warning, then shares again",
    async (mode) => {
      const target = new URL(url);
      const proxy = startTcpProxy({
        hostname: target.hostname,
        port: Number(target.port || 6379),
      });
      const logs: Record<string, unknown>[] = [];
      const logger = createLogger("debug", (line) => logs.push(JSON.parse(line)));
      const viaProxy = new URL(url);
      viaProxy.hostname = "127.0.0.1";
      viaProxy.port = String(proxy.port);
      const store = await redisStore(viaProxy.toString(), prefix(), logger);
      try {
        const clock = fakeClock();
        const limiter = createRateLimiter(store, "t", LIMIT, clock.now);
        expect((await limiter.hit("k")).allowed).toBe(true);
        proxy.cut(mode);
        // Redis is gone (or silent): every request still gets an answer, bounded by the Redis
        // timeout, and this replica still limits on its own.
        const during = [];
        for (let i = 0; i < 4; i++) during.push((await limiter.hit("k")).allowed);
        expect(during).toEqual([true, true, true, false]);
        expect(logs).toContainEqual(
          expect.objectContaining({
            level: "warn",
            msg: expect.stringContaining("failing open to counting on this replica"),
          }),
        );
        proxy.resume();
        // The client reconnects in the background: polled, with a generous deadline.
        const deadline = Date.now() + 45_000;
        while (!logs.some((l) => String(l.msg).includes("available again"))) {
          if (Date.now() > deadline) throw new Error("never counted in Redis again");
          await limiter.hit("other");
          await Bun.sleep(50);
        }
        // Counting in Redis again: "k" has its one hit from before the outage there.
        expect((await limiter.hit("k")).allowed).toBe(true);
        expect((await limiter.hit("k")).allowed).toBe(true);
        expect((await limiter.hit("k")).allowed).toBe(false);
      } finally {
        await store.close();
        proxy.stop();
      }
    },
    90_000,
  );
});
