/**
 * Rate-limit counters in Redis, so that every replica counts together. Each operation is one
 * Lua script, atomic in Redis, on one hash per counter (`<prefix><limiter>:<key>`: its count and
 * when its window ends). Windows are measured by the callers' clock, as the memory store does
 * (replicas' clocks agree to well within a window); Redis' own expiry only collects old keys.
 *
 * When Redis fails or is slow, the limits fail open to the memory store: each replica then counts
 * on its own, which still limits, but never locks everyone out because Redis is down. A warning
 * says so, at most once per interval, and shared counting resumes once Redis answers.
 */
import { connectRedis, scriptRunner } from "../cache/redis-client.ts";
import type { Logger } from "../logger.ts";
import { withinTimeout } from "../timeout.ts";
import { type CounterStore, createMemoryCounterStore, type WindowCount } from "./rate-limit.ts";

// ARGV[1] is the caller's tag, answered first (scriptRunner).
const ADD = `
local now = tonumber(ARGV[2])
local delta = tonumber(ARGV[4])
local reset_at = tonumber(redis.call('HGET', KEYS[1], 'reset_at'))
if not reset_at or reset_at <= now then
  if delta <= 0 then
    redis.call('DEL', KEYS[1])
    return {ARGV[1], 0, now}
  end
  reset_at = now + tonumber(ARGV[3])
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'reset_at', reset_at, 'count', 0)
end
local count = redis.call('HINCRBY', KEYS[1], 'count', delta)
if count < 0 then
  count = 0
  redis.call('HSET', KEYS[1], 'count', 0)
end
redis.call('PEXPIRE', KEYS[1], reset_at - now + 60000)
return {ARGV[1], count, reset_at}`;

export interface RedisCounterStoreOptions {
  url: string;
  /** Longest wait for Redis before counting locally instead. */
  timeoutMs: number;
  logger: Logger;
  prefix?: string;
  /** At most one warning per this many milliseconds while Redis is failing. */
  warnEveryMs?: number;
  connectAttempts?: number;
}

class RedisTimeoutError extends Error {
  override name = "RedisTimeoutError";
}

export async function createRedisCounterStore(
  options: RedisCounterStoreOptions,
): Promise<CounterStore> {
  const { timeoutMs, logger } = options;
  const prefix = options.prefix ?? "petbooks:ratelimit:";
  const warnEveryMs = options.warnEveryMs ?? 30_000;
  const local = createMemoryCounterStore();

  let failingSince: number | undefined;
  let lastWarning = 0;
  const reportFailure = (err: unknown) => {
    const now = Date.now();
    failingSince ??= now;
    if (now - lastWarning < warnEveryMs) return;
    lastWarning = now;
    logger.warn(
      "rate limits: Redis is unavailable; failing open to counting on this replica alone",
      { err },
    );
  };

  const bounded = <T>(operation: Promise<T>): Promise<T> =>
    withinTimeout(operation, timeoutMs, (message) => new RedisTimeoutError(message));

  /** Runs `shared` on Redis, or `fallback` locally when Redis does not answer. */
  const shared = async <T>(operation: () => Promise<T>, fallback: () => Promise<T>) => {
    try {
      const result = await bounded(operation());
      if (failingSince !== undefined) {
        logger.info("rate limits: Redis available again; counting across replicas", {
          outage_ms: Date.now() - failingSince,
        });
        failingSince = undefined;
      }
      return result;
    } catch (err) {
      reportFailure(err);
      return fallback();
    }
  };

  const client = await connectRedis({
    url: options.url,
    purpose: "rate limits",
    connectAttempts: options.connectAttempts,
    logger,
    onError: reportFailure,
  });
  const runScript = scriptRunner(client, { add: ADD }, reportFailure);

  return {
    kind: "redis",
    add(key, delta, now, windowMs) {
      return shared<WindowCount>(
        async () => {
          const [count, resetAt] = await runScript<[number, number]>(
            "add",
            [`${prefix}${key}`],
            [String(now), String(windowMs), String(delta)],
          );
          return { count: Number(count), resetAt: Number(resetAt) };
        },
        () => local.add(key, delta, now, windowMs),
      );
    },
    delete(key) {
      return shared(
        async () => {
          await client.sendCommand(["DEL", `${prefix}${key}`]);
        },
        () => local.delete(key),
      );
    },
    async close() {
      await local.close();
      if (!client.isOpen) return;
      // QUIT waits for an answer that a dead server never sends.
      await bounded(client.quit()).catch(() => client.destroy());
    },
  };
}
