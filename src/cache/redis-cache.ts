/**
 * The Redis cache. Every operation is one round trip (a Lua script) bounded by a short timeout;
 * when Redis is down or slow, reads miss and writes are skipped, one warning is logged per
 * interval, and caching resumes by itself once Redis answers again.
 *
 * Keys: `<prefix><epoch>:v:<namespace>` holds a namespace's version, a number drawn from one
 * global counter so no version is ever reused; entries live at
 * `<prefix><epoch>:d:<namespace>:<version>:<key>`. If an invalidation fails while Redis is
 * unreachable, the first operation after it comes back bumps the epoch, orphaning every entry
 * that might be stale. (The scripts build key names, which is fine on a single Redis server but
 * not on Redis Cluster.)
 */
import { createHash } from "node:crypto";
import type { Logger } from "../logger.ts";
import { withinTimeout } from "../timeout.ts";
import { type Cache, UNAVAILABLE } from "./cache.ts";
import { connectRedis } from "./redis-client.ts";

const READ = `
local epoch = redis.call('GET', KEYS[1] .. 'epoch') or '0'
local base = KEYS[1] .. epoch
local version = redis.call('GET', base .. ':v:' .. ARGV[1]) or '0'
return {epoch .. '/' .. version, redis.call('GET', base .. ':d:' .. ARGV[1] .. ':' .. version .. ':' .. ARGV[2])}`;

const WRITE = `
local epoch = redis.call('GET', KEYS[1] .. 'epoch') or '0'
local base = KEYS[1] .. epoch
local version = redis.call('GET', base .. ':v:' .. ARGV[1]) or '0'
if epoch .. '/' .. version ~= ARGV[3] then return 0 end
redis.call('SET', base .. ':d:' .. ARGV[1] .. ':' .. version .. ':' .. ARGV[2], ARGV[4], 'EX', ARGV[5])
return 1`;

const INVALIDATE = `
local epoch = redis.call('GET', KEYS[1] .. 'epoch') or '0'
local version = redis.call('INCR', KEYS[1] .. 'sequence')
for i = 2, #ARGV do
  redis.call('SET', KEYS[1] .. epoch .. ':v:' .. ARGV[i], version, 'EX', ARGV[1])
end
return version`;

const sha1 = (text: string) => createHash("sha1").update(text).digest("hex");
const SCRIPTS = { read: READ, write: WRITE, invalidate: INVALIDATE } as const;
type ScriptName = keyof typeof SCRIPTS;

export interface RedisCacheOptions {
  url: string;
  ttlSeconds: number;
  timeoutMs: number;
  logger: Logger;
  prefix?: string;
  /** At most one warning per this many milliseconds while Redis is failing. */
  warnEveryMs?: number;
  connectAttempts?: number;
  /** Told of every failed or timed-out operation (metrics): `read`, `write`, `invalidate`, `connection`. */
  onFailure?: ((operation: string) => void) | undefined;
}

class CacheTimeoutError extends Error {
  override name = "CacheTimeoutError";
}

export async function createRedisCache(options: RedisCacheOptions): Promise<Cache> {
  const { ttlSeconds, timeoutMs, logger } = options;
  const prefix = options.prefix ?? "petbooks:cache:";
  const warnEveryMs = options.warnEveryMs ?? 30_000;
  // A version must outlive every entry written under it, so it can never come back into use.
  const versionTtl = String(ttlSeconds * 2 + 60);

  let failingSince: number | undefined;
  let lastWarning = 0;
  let suppressed = 0;
  let staleAfterOutage = false;

  const reportFailure = (operation: string, err: unknown) => {
    options.onFailure?.(operation);
    failingSince ??= Date.now();
    const now = Date.now();
    if (now - lastWarning >= warnEveryMs) {
      logger.warn("redis cache unavailable; serving from the database", {
        operation,
        err,
        failures_since_last_warning: suppressed,
      });
      lastWarning = now;
      suppressed = 0;
    } else {
      suppressed += 1;
    }
  };

  const run = async <T>(script: ScriptName, args: string[]): Promise<T> => {
    const evalSha = () =>
      client.sendCommand<T>(["EVALSHA", sha1(SCRIPTS[script]), "1", prefix, ...args]);
    try {
      return await evalSha();
    } catch (err) {
      if (!String((err as Error).message).startsWith("NOSCRIPT")) throw err;
      // Redis restarted and forgot the scripts.
      return client.sendCommand<T>(["EVAL", SCRIPTS[script], "1", prefix, ...args]);
    }
  };

  const bounded = <T>(operation: Promise<T>): Promise<T> =>
    withinTimeout(operation, timeoutMs, (message) => new CacheTimeoutError(message));

  /** After an outage in which an invalidation was lost, orphan everything before caching again. */
  const recover = async () => {
    if (staleAfterOutage) {
      await bounded(client.sendCommand(["INCR", `${prefix}epoch`]));
      staleAfterOutage = false;
      logger.info("redis cache epoch bumped after an outage");
    }
    if (failingSince !== undefined) {
      logger.info("redis cache available again", { outage_ms: Date.now() - failingSince });
      failingSince = undefined;
    }
  };

  const client = await connectRedis({
    url: options.url,
    purpose: "cache",
    connectAttempts: options.connectAttempts,
    logger,
    onError: (err) => reportFailure("connection", err),
  });

  return {
    kind: "redis",
    async read(namespace, key) {
      try {
        await recover();
        const [version, value] = await bounded(
          run<[string, string | null]>("read", [namespace, key]),
        );
        return { value: value ?? undefined, version };
      } catch (err) {
        reportFailure("read", err);
        return { value: undefined, version: UNAVAILABLE };
      }
    },
    async write(namespace, key, version, value) {
      if (version === UNAVAILABLE) return;
      try {
        await bounded(run("write", [namespace, key, version, value, String(ttlSeconds)]));
      } catch (err) {
        reportFailure("write", err);
      }
    },
    async invalidate(namespaces) {
      try {
        await recover();
        await bounded(run("invalidate", [versionTtl, ...namespaces]));
      } catch (err) {
        staleAfterOutage = true;
        reportFailure("invalidate", err);
      }
    },
    async close() {
      if (!client.isOpen) return;
      // QUIT waits for an answer that a dead server never sends.
      await bounded(client.quit()).catch(() => client.destroy());
    },
  };
}
