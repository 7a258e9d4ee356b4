/**
 * The abuse protection of the password endpoints, built from the configuration: the rate limits
 * (counted in Redis when REDIS_URL is set, so every replica counts together; in memory
 * otherwise) and the bounded password hashing queue.
 */
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import { createHashQueue, type HashQueue } from "./hash-queue.ts";
import { createRedisCounterStore } from "./rate-limit.redis.ts";
import { type AuthLimits, createAuthLimits, createMemoryCounterStore } from "./rate-limit.ts";

export type ProtectionConfig = Pick<
  Config,
  | "redisUrl"
  | "redisTimeoutMs"
  | "redisKeyPrefix"
  | "authUsernameFailures"
  | "authUsernameWindowSeconds"
  | "authAddressAttempts"
  | "authAddressWindowSeconds"
  | "passwordHashConcurrency"
  | "passwordHashQueue"
  | "passwordHashWaitMs"
  | "trustedProxies"
>;

export interface PasswordProtection {
  limits: AuthLimits;
  hashQueue: HashQueue;
  close(): Promise<void>;
}

export async function openPasswordProtection(
  config: ProtectionConfig,
  logger: Logger,
): Promise<PasswordProtection> {
  const log = logger.child({ module: "abuse" });
  const store = config.redisUrl
    ? await createRedisCounterStore({
        url: config.redisUrl,
        timeoutMs: config.redisTimeoutMs,
        prefix: `${config.redisKeyPrefix}ratelimit:`,
        logger: log,
      })
    : createMemoryCounterStore();
  const limits = createAuthLimits(store, {
    usernameFailures: {
      limit: config.authUsernameFailures,
      windowSeconds: config.authUsernameWindowSeconds,
    },
    addressAttempts: {
      limit: config.authAddressAttempts,
      windowSeconds: config.authAddressWindowSeconds,
    },
  });
  const hashQueue = createHashQueue({
    concurrency: config.passwordHashConcurrency,
    maxQueued: config.passwordHashQueue,
    maxWaitMs: config.passwordHashWaitMs,
  });
  log.info("password endpoints protected", {
    counted_in: store.kind,
    username_failures: `${config.authUsernameFailures} per ${config.authUsernameWindowSeconds} s`,
    address_attempts: `${config.authAddressAttempts} per ${config.authAddressWindowSeconds} s`,
    client_address: config.trustedProxies.length
      ? "X-Forwarded-For from TRUSTED_PROXIES"
      : "socket peer",
    hashing: `${config.passwordHashConcurrency} at a time, ${config.passwordHashQueue} waiting for at most ${config.passwordHashWaitMs} ms`,
  });
  return { limits, hashQueue, close: () => limits.close() };
}
