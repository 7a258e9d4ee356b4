/** Retries an async operation a fixed number of times with a (optionally exponential) delay. */
import type { Logger } from "./logger.ts";

type ErrorClass = abstract new (...args: never[]) => Error;

export interface RetryOptions {
  /** Total attempts, the first one included. */
  times?: number;
  /** Milliseconds before the second attempt. */
  delayMs?: number;
  /** Multiply the delay by 2 after each failure and add up to 20% jitter. */
  exponential?: boolean;
  /** Only these errors are retried; anything else is re-thrown at once. */
  exceptions?: readonly ErrorClass[];
  /** What is being attempted, for the log lines. */
  name?: string;
  logger?: Logger;
}

export async function retry<T>(
  operation: () => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const { times = 3, delayMs = 1000, exponential = false, exceptions = [Error] } = options;
  if (!Number.isInteger(times) || times < 1) throw new RangeError("retry: times must be >= 1");
  let delay = delayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (err) {
      const retriable = exceptions.some((cls) => err instanceof cls);
      if (!retriable || attempt >= times) throw err;
      const wait = exponential ? delay * (1 + Math.random() * 0.2) : delay;
      options.logger?.warn("attempt failed, retrying", {
        operation: options.name,
        attempt,
        of: times,
        retry_in_ms: Math.round(wait),
        err,
      });
      await Bun.sleep(wait);
      if (exponential) delay *= 2;
    }
  }
}
