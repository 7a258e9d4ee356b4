/**
 * Brute-force and cost limits of the password endpoints: fixed-window counters, kept in this
 * process's memory or in Redis shared by every replica (rate-limit.redis.ts), and the policy
 * that counts attempts per client address and failures per username, before any password is
 * hashed.
 */
import { createHash } from "node:crypto";
import { TooManyRequestsError } from "../errors.ts";

/** A count in a window: how many, and when the window ends (ms since the epoch). */
export interface WindowCount {
  count: number;
  resetAt: number;
}

/** Where the counters live. */
export interface CounterStore {
  readonly kind: "memory" | "redis";
  /**
   * Adds `delta` to `key`'s count in its current window, and answers the count. A window starts
   * at the first hit after the last one ended and lasts `windowMs`. A negative `delta` (taking
   * back a hit) never starts a window.
   */
  add(key: string, delta: number, now: number, windowMs: number): Promise<WindowCount>;
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}

/** At most this many keys are held in memory: beyond that, ended windows go, then the oldest. */
const MEMORY_MAX_KEYS = 100_000;

export function createMemoryCounterStore(maxKeys = MEMORY_MAX_KEYS): CounterStore {
  const windows = new Map<string, WindowCount>();
  const makeRoom = (now: number) => {
    for (const [key, window] of windows) if (window.resetAt <= now) windows.delete(key);
    // Map iterates in insertion order and a new window is inserted afresh: oldest first.
    for (const key of windows.keys()) {
      if (windows.size < maxKeys) break;
      windows.delete(key);
    }
  };
  return {
    kind: "memory",
    async add(key, delta, now, windowMs) {
      let window = windows.get(key);
      if (!window || window.resetAt <= now) {
        windows.delete(key);
        if (delta <= 0) return { count: 0, resetAt: now };
        if (windows.size >= maxKeys) makeRoom(now);
        window = { count: 0, resetAt: now + windowMs };
        windows.set(key, window);
      }
      window.count = Math.max(0, window.count + delta);
      return { ...window };
    },
    async delete(key) {
      windows.delete(key);
    },
    async close() {
      windows.clear();
    },
  };
}

export interface RateLimit {
  /** Hits allowed per window. */
  limit: number;
  windowSeconds: number;
}

export interface Verdict {
  allowed: boolean;
  /** Whole seconds until the window ends (at least 1): the `Retry-After` of a refusal. */
  retryAfterSeconds: number;
}

export interface RateLimiter {
  /** Counts one hit on `key`; allowed while the window holds at most `limit` of them. */
  hit(key: string): Promise<Verdict>;
  /** Takes back a hit that turned out not to count. */
  undo(key: string): Promise<void>;
  /** Forgets `key`'s hits. */
  reset(key: string): Promise<void>;
}

export function createRateLimiter(
  store: CounterStore,
  name: string,
  { limit, windowSeconds }: RateLimit,
  now: () => number = Date.now,
): RateLimiter {
  const windowMs = windowSeconds * 1000;
  const keyOf = (key: string) => `${name}:${key}`;
  return {
    async hit(key) {
      const at = now();
      const { count, resetAt } = await store.add(keyOf(key), 1, at, windowMs);
      return {
        allowed: count <= limit,
        retryAfterSeconds: Math.max(1, Math.ceil((resetAt - at) / 1000)),
      };
    },
    async undo(key) {
      await store.add(keyOf(key), -1, now(), windowMs);
    },
    async reset(key) {
      await store.delete(keyOf(key));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The policy of the password endpoints

export interface AuthLimitsConfig {
  /**
   * Failed logins per username (case-insensitive), whatever the address: what stops guessing one
   * account's password from many addresses. A successful login forgets them.
   */
  usernameFailures: RateLimit;
  /**
   * Password attempts (logins and registrations, right or wrong) per client address: what bounds
   * the hashing one client can make the server do, and guessing across many usernames.
   */
  addressAttempts: RateLimit;
}

export const DEFAULT_AUTH_LIMITS: AuthLimitsConfig = {
  usernameFailures: { limit: 10, windowSeconds: 15 * 60 },
  addressAttempts: { limit: 100, windowSeconds: 60 },
};

export const ADDRESS_LIMITED =
  "Too many sign-in or registration attempts from this address: try again after the Retry-After delay.";
export const USERNAME_LIMITED =
  "Too many failed sign-ins for this username: try again after the Retry-After delay.";

export interface AuthAttempt {
  /** The client's address (see client-address.ts); undefined for in-process calls. */
  address?: string | undefined;
  /** The username a login is for; registrations give none. */
  username?: string | undefined;
}

/** An admitted attempt, told how it ended. */
export interface Admission {
  /** The password was right: the username's failures are forgotten. */
  succeeded(): Promise<void>;
  /** The password was never checked (the server was too busy): it is no failure. */
  withdrawn(): Promise<void>;
}

export interface AuthLimits {
  readonly kind: CounterStore["kind"];
  /**
   * Counts an attempt that is about to hash a password, or refuses it with a
   * TooManyRequestsError: first by address, then by username. Until told otherwise, a login
   * counts as a failure from the start, so concurrent guesses cannot all slip under the limit.
   */
  admit(attempt: AuthAttempt): Promise<Admission>;
  close(): Promise<void>;
}

/** Usernames are counted by digest: bounded keys, and no username in Redis. */
const usernameKey = (username: string) =>
  createHash("sha256").update(username.toLowerCase()).digest("base64url").slice(0, 24);

const NOTHING_TO_REPORT: Admission = { succeeded: async () => {}, withdrawn: async () => {} };

export function createAuthLimits(
  store: CounterStore,
  config: AuthLimitsConfig = DEFAULT_AUTH_LIMITS,
  now: () => number = Date.now,
): AuthLimits {
  const addresses = createRateLimiter(store, "address", config.addressAttempts, now);
  const usernames = createRateLimiter(store, "username", config.usernameFailures, now);
  return {
    kind: store.kind,
    async admit({ address, username }) {
      if (address !== undefined) {
        const verdict = await addresses.hit(address);
        if (!verdict.allowed) {
          throw new TooManyRequestsError(ADDRESS_LIMITED, verdict.retryAfterSeconds);
        }
      }
      if (username === undefined) return NOTHING_TO_REPORT;
      const key = usernameKey(username);
      const verdict = await usernames.hit(key);
      if (!verdict.allowed) {
        throw new TooManyRequestsError(USERNAME_LIMITED, verdict.retryAfterSeconds);
      }
      return {
        succeeded: () => usernames.reset(key),
        withdrawn: () => usernames.undo(key),
      };
    },
    close: () => store.close(),
  };
}
