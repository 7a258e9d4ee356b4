/**
 * Retries an async operation a fixed number of times with an (optionally exponential) delay,
 * either as a wrapper, `retry(() => connect(), options)`, or as a TC39 method decorator,
 * `@retryable(options)`.
 */
import { isDatabaseUnavailable, UNREACHABLE_CODES } from "./db/errors.ts";
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
  /** `false`: exponential delays without the jitter, exactly `delayMs` doubled. Default true. */
  jitter?: boolean;
  /** Only these errors are retried; anything else is re-thrown at once. Default: any `Error`. */
  exceptions?: readonly ErrorClass[];
  /** A further filter: errors it rejects are re-thrown at once, e.g. {@link isTransient}. */
  retryOn?: (err: unknown) => boolean;
  /** What is being attempted, for the log lines. */
  name?: string;
  logger?: Logger;
  /**
   * Called before each wait with the error and the number of the attempt that failed, for a
   * caller that logs its retries its own way (then without `logger`, or each is logged twice).
   */
  onRetry?: (err: unknown, attempt: number) => void;
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

export function isRetriable(
  err: unknown,
  exceptions: readonly ErrorClass[],
  retryOn: (err: unknown) => boolean = () => true,
): boolean {
  if (err instanceof AppError && NEVER_RETRIED_CODES.has(err.code)) return false;
  return exceptions.some((cls) => err instanceof cls) && retryOn(err);
}

/** Libraries that wrap a socket error often keep its code only in the message (kafkajs). */
const UNREACHABLE_IN_MESSAGE = new RegExp(`\\b(${[...UNREACHABLE_CODES].join("|")})\\b`);

/**
 * Whether `err`, or an error it wraps (`cause`), says the other side is out of reach or
 * overloaded for now, so that the same call may succeed later:
 * - an unavailable database (db/errors.ts): a socket or driver connection error code, or a
 *   SQLSTATE of a server starting, stopping, full, or that cancelled a slow statement;
 * - a socket error code named only in the message ("Connection error: connect ECONNREFUSED");
 * - a timeout or a socket closed under us, by its class name (node-redis's ConnectionTimeoutError
 *   and SocketClosedUnexpectedlyError, kafkajs's KafkaJSRequestTimeoutError);
 * - an error kafkajs marks `retriable` (connection errors, a leader or coordinator not available);
 * - our own AppError with code `unavailable`.
 * A wrong password, a missing database or topic, a refused authorisation is none of these.
 */
export function isTransient(err: unknown): boolean {
  if (isDatabaseUnavailable(err)) return true;
  for (let e = err, depth = 0; e instanceof Error && depth < 5; depth++) {
    if (e instanceof AppError && e.code === "unavailable") return true;
    if ((e as { retriable?: unknown }).retriable === true) return true;
    if (/Timeout|SocketClosedUnexpectedly/.test(e.name) || UNREACHABLE_IN_MESSAGE.test(e.message))
      return true;
    e = e.cause;
  }
  return false;
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
    jitter = true,
    exceptions = [Error],
    retryOn,
    sleep = Bun.sleep,
  } = options;
  let delay = delayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (err) {
      if (attempt >= times || !isRetriable(err, exceptions, retryOn)) throw err;
      const wait = exponential && jitter ? delay * (1 + Math.random() * JITTER) : delay;
      options.logger?.warn("attempt failed, retrying", {
        operation: options.name,
        attempt,
        of: times,
        retry_in_ms: Math.round(wait),
        // Name and message only: stacks and driver-specific fields can carry connection details.
        err: { name: (err as Error).name, message: (err as Error).message },
      });
      options.onRetry?.(err, attempt);
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
 * Method decorator form of {@link retry} for async methods (TC39 standard decorators), given
 * options, `@retryable({ times: 3, delayMs: 200, retryOn: isTransient })`, or a function of the
 * instance and the call's arguments for options that differ per instance or per call (attempts
 * from the config, an injected sleep), as on `PostgresConnection.connect` (db/client.ts):
 *
 *     @retryable((c: PostgresConnection) => ({ times: c.attempts, sleep: c.sleep, ... }))
 *     async connect(): Promise<void> { ... }
 *
 * Each call of the method is retried with `this` and the arguments it was called with.
 * Log lines go to `options.logger` or, when that is absent, to the instance's own `logger`
 * property if it has one; `name` defaults to "Class.method". Invalid options given as an object
 * throw a RangeError when the class is defined; given as a function, at the call.
 */
export function retryable<This = unknown, Args extends unknown[] = unknown[]>(
  options: RetryOptions | ((self: This, args: Args) => RetryOptions) = {},
) {
  if (typeof options !== "function") validateRetryOptions(options);
  return <T extends This, A extends Args, Result>(
    method: (this: T, ...args: A) => Promise<Result>,
    context: ClassMethodDecoratorContext<T, (this: T, ...args: A) => Promise<Result>>,
  ) => {
    const methodName = String(context.name);
    return async function retried(this: T, ...args: A): Promise<Result> {
      const owner = context.static ? this : (this as { constructor?: unknown })?.constructor;
      const className = (owner as { name?: string } | undefined)?.name;
      const resolved = typeof options === "function" ? options(this, args) : options;
      return retry(() => method.apply(this, args), {
        ...resolved,
        name: resolved.name ?? (className ? `${className}.${methodName}` : methodName),
        logger: resolved.logger ?? loggerOf(this),
      });
    };
  };
}
