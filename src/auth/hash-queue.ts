/**
 * Password hashing with bounded concurrency. An argon2id hash takes tens to hundreds of
 * milliseconds of a core and 64 MiB of memory, so a flood of logins hashed all at once would
 * starve every other request (and exhaust memory). The queue gives at most `concurrency` turns at
 * a time; up to `maxQueued` more wait for one, each for at most `maxWaitMs`. Beyond that a
 * request is refused at once with 503 and Retry-After, rather than piling up; and refused before
 * anything else is spent on it (a login looks its user up only once it has a turn).
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
  /** Turns at once: hashes running at the same time. */
  concurrency: number;
  /** Requests waiting for a turn; more are refused at once. */
  maxQueued: number;
  /** The longest a request waits for its turn before it is refused. */
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

export interface HashQueue {
  /** Runs `work` (which hashes a password) in a turn, or refuses with a RetryLaterError. */
  run<T>(work: () => Promise<T>): Promise<T>;
  /** Turns taken and requests waiting now. */
  load(): { running: number; queued: number };
}

const realTimer = (fire: () => void, ms: number) => {
  const timer = setTimeout(fire, ms);
  return () => clearTimeout(timer);
};

export function createHashQueue(options: HashQueueOptions): HashQueue {
  const { concurrency, maxQueued, maxWaitMs, setTimer = realTimer } = options;
  const retryAfterSeconds = Math.max(1, Math.ceil(maxWaitMs / 1000));
  const busy = () => new RetryLaterError("unavailable", HASHING_BUSY, retryAfterSeconds);
  let running = 0;
  /** Starts a waiting request's work; in arrival order. */
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

  return {
    run<T>(work: () => Promise<T>): Promise<T> {
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
    },
    load: () => ({ running, queued: waiting.length }),
  };
}
