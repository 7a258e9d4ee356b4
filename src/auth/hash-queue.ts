/**
 * Password hashing with bounded concurrency. An argon2id hash takes tens to hundreds of
 * milliseconds of a core and 64 MiB of memory, so a flood of logins hashed all at once would
 * starve every other request (and exhaust memory). Here at most `concurrency` hashes run at a
 * time; up to `maxQueued` more wait their turn, each for at most `maxWaitMs`. Beyond that the
 * request is refused at once with 503 and Retry-After, rather than piling up.
 */
import { availableParallelism } from "node:os";
import { RetryLaterError } from "../errors.ts";

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
}

export const argon2idHasher: PasswordHasher = {
  hash: (password) => Bun.password.hash(password, { algorithm: "argon2id" }),
  verify: (password, hash) => Bun.password.verify(password, hash),
};

export interface HashQueueOptions {
  /** Hashes running at once. */
  concurrency: number;
  /** Hashes waiting for a turn; more are refused at once. */
  maxQueued: number;
  /** The longest a hash waits for its turn before it is refused. */
  maxWaitMs: number;
  /** Starts a timer and answers how to cancel it; tests pass their own, fired by hand. */
  setTimer?: (fire: () => void, ms: number) => () => void;
}

export function defaultHashQueueOptions(): HashQueueOptions {
  const concurrency = availableParallelism();
  return { concurrency, maxQueued: 16 * concurrency, maxWaitMs: 5_000 };
}

export const HASHING_BUSY =
  "The server is too busy checking passwords: try again after the Retry-After delay.";

export interface BoundedHasher extends PasswordHasher {
  /** Hashes running and waiting now. */
  load(): { running: number; queued: number };
}

const realTimer = (fire: () => void, ms: number) => {
  const timer = setTimeout(fire, ms);
  return () => clearTimeout(timer);
};

export function boundedHasher(inner: PasswordHasher, options: HashQueueOptions): BoundedHasher {
  const { concurrency, maxQueued, maxWaitMs, setTimer = realTimer } = options;
  const retryAfterSeconds = Math.max(1, Math.ceil(maxWaitMs / 1000));
  const busy = () => new RetryLaterError("unavailable", HASHING_BUSY, retryAfterSeconds);
  let running = 0;
  /** Starts a waiting hash; in arrival order. */
  const waiting: (() => void)[] = [];

  const start = async <T>(work: () => Promise<T>): Promise<T> => {
    running += 1;
    try {
      return await work();
    } finally {
      running -= 1;
      waiting.shift()?.();
    }
  };

  const run = <T>(work: () => Promise<T>): Promise<T> => {
    if (running < concurrency) return start(work);
    if (waiting.length >= maxQueued) return Promise.reject(busy());
    return new Promise<T>((resolve, reject) => {
      const go = () => {
        cancelTimer();
        start(work).then(resolve, reject);
      };
      const cancelTimer = setTimer(() => {
        const at = waiting.indexOf(go);
        if (at === -1) return;
        waiting.splice(at, 1);
        reject(busy());
      }, maxWaitMs);
      waiting.push(go);
    });
  };

  return {
    hash: (password) => run(() => inner.hash(password)),
    verify: (password, hash) => run(() => inner.verify(password, hash)),
    load: () => ({ running, queued: waiting.length }),
  };
}
