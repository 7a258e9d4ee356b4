/**
 * Retries an async operation a fixed number of times with an (optionally exponential) delay,
 * either as a wrapper, `retry(() => connect(), options)`, or as a TC39 method decorator,
 * `@retryable(options)`.
 */
import { AppError, type ErrorCode } from "./errors.ts";
import type { Logger } from "./logger.ts";

type ErrorClass = abstract new (...args: never[]) => Error;

export interface RetryOptions {
  /** Total attempts, the first one included. Default 3. */
  times?: number;
  /** Milliseconds before the second attempt. Default 1000. */
  delayMs?: number;
  /** Multiply the delay by 2 after each failure and add up to 20% jitter. */
  exponential?: boolean;
  /** Only these errors are retried; anything else is re-thrown at once. Default: any `Error`. */
  exceptions?: readonly ErrorClass[];
  /** What is being attempted, for the log lines. */
  name?: string;
  logger?: Logger;
  /** How to wait between attempts; tests inject one to see the delays. Default `Bun.sleep`. */
  sleep?: (ms: number) => Promise<void>;
}

/** The caller's mistakes: the same request fails the same way however often it is repeated. */
const NEVER_RETRIED_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "bad_request",
  "validation",
  "unauthorized",
  "not_found",
  "conflict",
  "payload_too_large",
  "unsupported_media_type",
]);

const JITTER = 0.2;

/** Throws a RangeError for option values that cannot mean anything. */
export function validateRetryOptions(options: RetryOptions): void {
  const { times, delayMs } = options;
  if (times !== undefined && (!Number.isInteger(times) || times < 1)) {
    throw new RangeError(`retry: times must be an integer >= 1, got ${times}`);
  }
  if (delayMs !== undefined && (!Number.isFinite(delayMs) || delayMs < 0)) {
    throw new RangeError(`retry: delayMs must be a finite number >= 0, got ${delayMs}`);
  }
}

export function isRetriable(err: unknown, exceptions: readonly ErrorClass[]): boolean {
  if (err instanceof AppError && NEVER_RETRIED_CODES.has(err.code)) return false;
  return exceptions.some((cls) => err instanceof cls);
}

/** Runs `operation` up to `times` times; the last error is re-thrown unchanged. */
export async function retry<T>(
  operation: () => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  validateRetryOptions(options);
  const {
    times = 3,
    delayMs = 1000,
    exponential = false,
    exceptions = [Error],
    sleep = Bun.sleep,
  } = options;
  let delay = delayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (err) {
      if (attempt >= times || !isRetriable(err, exceptions)) throw err;
      const wait = exponential ? delay * (1 + Math.random() * JITTER) : delay;
      options.logger?.warn("attempt failed, retrying", {
        operation: options.name,
        attempt,
        of: times,
        retry_in_ms: Math.round(wait),
        // Name and message only: stacks and driver-specific fields can carry connection details.
        err: { name: (err as Error).name, message: (err as Error).message },
      });
      await sleep(wait);
      if (exponential) delay *= 2;
    }
  }
}

function loggerOf(instance: unknown): Logger | undefined {
  const candidate = (instance as { logger?: Partial<Logger> } | null | undefined)?.logger;
  return typeof candidate?.warn === "function" ? (candidate as Logger) : undefined;
}

/**
 * Method decorator form of {@link retry} for async methods (TC39 standard decorators):
 *
 *     class Relay {
 *       constructor(readonly logger: Logger) {}
 *       @retryable({ times: 5, delayMs: 200, exponential: true })
 *       async connect(): Promise<void> { ... }
 *     }
 *
 * Each call of the method is retried with `this` and the arguments it was called with.
 * Log lines go to `options.logger` or, when that is absent, to the instance's own `logger`
 * property if it has one; `name` defaults to "Class.method". Invalid options throw a
 * RangeError when the class is defined, not on the first call.
 */
export function retryable(options: RetryOptions = {}) {
  validateRetryOptions(options);
  return <This, Args extends unknown[], Result>(
    method: (this: This, ...args: Args) => Promise<Result>,
    context: ClassMethodDecoratorContext<This, (this: This, ...args: Args) => Promise<Result>>,
  ) => {
    const methodName = String(context.name);
    return async function retried(this: This, ...args: Args): Promise<Result> {
      const owner = context.static ? this : (this as { constructor?: unknown })?.constructor;
      const className = (owner as { name?: string } | undefined)?.name;
      return retry(() => method.apply(this, args), {
        ...options,
        name: options.name ?? (className ? `${className}.${methodName}` : methodName),
        logger: options.logger ?? loggerOf(this),
      });
    };
  };
}
