import { describe, expect, test } from "bun:test";
import {
  KafkaJSConnectionError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
} from "kafkajs";
import { DatabaseTimeoutError } from "./db/errors.ts";
import {
  AppError,
  ConflictError,
  type ErrorCode,
  NotFoundError,
  RetryLaterError,
  UnauthorizedError,
  ValidationError,
} from "./errors.ts";
import type { Logger } from "./logger.ts";
import { isTransient, type RetryOptions, retry, retryable } from "./retry.ts";
import { capturingLogger } from "./testing/logger.ts";
import { recordingSleep } from "./testing/sleep.ts";

class TransientError extends Error {}
class OtherError extends Error {}

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

function failing(failures: number, error: () => unknown = () => new TransientError("flaky")) {
  let calls = 0;
  const op = async () => {
    calls += 1;
    if (calls <= failures) throw error();
    return calls;
  };
  return { op, calls: () => calls };
}

describe("retry", () => {
  test.each([
    [0, 1, 1],
    [0, 3, 1],
    [1, 3, 2],
    [2, 3, 3],
    [4, 5, 5],
  ])("%d failures with times=%d succeeds on attempt %d", async (failures, times, attempt) => {
    const f = failing(failures);
    expect(await retry(f.op, { times, delayMs: 1 })).toBe(attempt);
    expect(f.calls()).toBe(attempt);
  });

  test.each([1, 2, 5])(
    "makes exactly times=%d attempts, then re-throws the last error unchanged",
    async (times) => {
      const thrown: Error[] = [];
      const op = async () => {
        const err = new TransientError(`failure ${thrown.length + 1}`);
        thrown.push(err);
        throw err;
      };
      const caught = await retry(op, { times, delayMs: 1 }).catch((err: unknown) => err);
      expect(caught).toBe(thrown[times - 1] as Error);
      expect(thrown).toHaveLength(times);
    },
  );

  test("defaults to 3 attempts", async () => {
    const { sleep } = recordingSleep();
    const f = failing(10);
    await expect(retry(f.op, { sleep })).rejects.toThrow(TransientError);
    expect(f.calls()).toBe(3);
  });

  test.each<[string, () => unknown, RetryOptions["exceptions"]]>([
    ["an error outside `exceptions`", () => new OtherError("nope"), [TransientError]],
    ["a thrown non-Error with default exceptions", () => "a string", undefined],
    ["anything when `exceptions` is empty", () => new TransientError("flaky"), []],
  ])("does not retry %s", async (_, error, exceptions) => {
    const f = failing(5, error);
    const caught = await retry(f.op, { times: 3, delayMs: 1, exceptions }).catch((e) => e);
    expect(caught).toEqual(error());
    expect(f.calls()).toBe(1);
  });

  test.each<[ErrorCode, () => AppError]>([
    ["validation", () => new ValidationError("bad title")],
    ["not_found", () => new NotFoundError("gone")],
    ["unauthorized", () => new UnauthorizedError()],
    ["conflict", () => new ConflictError("taken")],
    ["bad_request", () => new AppError("bad_request", "malformed")],
  ])(
    "never retries an AppError with code %s, even when `exceptions` lists it",
    async (code, error) => {
      const f = failing(5, error);
      const caught = await retry(f.op, {
        times: 3,
        delayMs: 1,
        exceptions: [AppError, Error],
      }).catch((e: AppError) => e);
      expect(caught).toBeInstanceOf(AppError);
      expect((caught as AppError).code).toBe(code);
      expect(f.calls()).toBe(1);
    },
  );

  test.each<ErrorCode>(["unavailable", "internal"])(
    "retries an AppError with code %s",
    async (code) => {
      const f = failing(2, () => new AppError(code, "try later"));
      expect(await retry(f.op, { times: 3, delayMs: 1 })).toBe(3);
    },
  );

  test.each([
    [false, 10, 4, [10, 10, 10]],
    [true, 10, 4, [10, 20, 40]],
    [true, 0, 3, [0, 0]],
  ])(
    "exponential=%p, delayMs=%d, times=%d waits about %p",
    async (exponential, delayMs, times, bases) => {
      const { sleep, delays } = recordingSleep();
      await expect(retry(failing(10).op, { times, delayMs, exponential, sleep })).rejects.toThrow(
        TransientError,
      );
      expect(delays).toHaveLength(bases.length);
      delays.forEach((delay, i) => {
        const base = bases[i] as number;
        expect(delay).toBeGreaterThanOrEqual(base);
        expect(delay).toBeLessThanOrEqual(exponential ? base * 1.2 : base);
      });
    },
  );

  test("exponential jitter varies the delays", async () => {
    const { sleep, delays } = recordingSleep();
    for (let i = 0; i < 5; i++) {
      await retry(failing(1).op, { times: 2, delayMs: 1000, exponential: true, sleep });
    }
    expect(new Set(delays).size).toBeGreaterThan(1);
  });

  test("jitter=false keeps the exponential delays exact", async () => {
    const { sleep, delays } = recordingSleep();
    const options = { times: 4, delayMs: 500, exponential: true, jitter: false, sleep };
    await expect(retry(failing(10).op, options)).rejects.toThrow(TransientError);
    expect(delays).toEqual([500, 1000, 2000]);
  });

  test("waits between attempts without blocking the event loop", async () => {
    const f = failing(2);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 2);
    const started = performance.now();
    await retry(f.op, { times: 3, delayMs: 15, exponential: true });
    clearInterval(timer);
    expect(performance.now() - started).toBeGreaterThanOrEqual(44); // 15 + 30, jitter only adds
    expect(ticks).toBeGreaterThan(5);
  });

  test("logs each retried attempt with its number, total, delay and error name and message", async () => {
    const { logger, lines } = capturingLogger();
    const { sleep } = recordingSleep();
    const f = failing(2);
    await retry(f.op, { times: 3, delayMs: 7, name: "flaky thing", logger, sleep });
    expect(lines).toEqual([
      expect.objectContaining({
        level: "warn",
        operation: "flaky thing",
        attempt: 1,
        of: 3,
        retry_in_ms: 7,
        err: { name: "Error", message: "flaky" },
      }),
      expect.objectContaining({ attempt: 2, of: 3 }),
    ]);
  });

  test("does not log the final failure it re-throws, nor non-retriable errors", async () => {
    const { logger, lines } = capturingLogger();
    await expect(retry(failing(9).op, { times: 1, logger })).rejects.toThrow(TransientError);
    await expect(
      retry(failing(9, () => new NotFoundError("gone")).op, { times: 3, delayMs: 1, logger }),
    ).rejects.toThrow(NotFoundError);
    expect(lines).toEqual([]);
  });

  test("onRetry gets each retried attempt's error and number, before its wait", async () => {
    const seen: unknown[] = [];
    const { sleep, delays } = recordingSleep();
    const onRetry = (err: unknown, attempt: number) =>
      seen.push([(err as Error).message, attempt, delays.length]);
    const errors = ["first", "second", "third"].map((m) => new TransientError(m));
    const f = failing(3, () => errors.shift());
    await expect(retry(f.op, { times: 3, delayMs: 1, onRetry, sleep })).rejects.toThrow("third");
    expect(seen).toEqual([
      ["first", 1, 0],
      ["second", 2, 1],
    ]);
    await expect(
      retry(failing(9, () => new NotFoundError("gone")).op, { times: 3, onRetry, sleep }),
    ).rejects.toThrow(NotFoundError);
    expect(seen).toHaveLength(2);
  });

  test.each<[string, RetryOptions]>([
    ["times=0", { times: 0 }],
    ["times=-1", { times: -1 }],
    ["times=1.5", { times: 1.5 }],
    ["times=NaN", { times: Number.NaN }],
    ["delayMs=-1", { delayMs: -1 }],
    ["delayMs=Infinity", { delayMs: Number.POSITIVE_INFINITY }],
  ])("rejects %s with a RangeError before any attempt", async (_, options) => {
    const f = failing(0);
    await expect(retry(f.op, options)).rejects.toThrow(RangeError);
    expect(f.calls()).toBe(0);
  });
});

describe("isTransient", () => {
  test.each<[string, unknown]>([
    ["a refused connection", withCode("connect ECONNREFUSED 127.0.0.1:1", "ECONNREFUSED")],
    ["a reset connection", withCode("read ECONNRESET", "ECONNRESET")],
    ["postgres.js's connect timeout", withCode("write CONNECT_TIMEOUT", "CONNECT_TIMEOUT")],
    ["a PostgreSQL that is starting", withCode("the database system is starting up", "57P03")],
    [
      "a driver error under Drizzle's",
      new Error("Failed query", { cause: withCode("x", "57P01") }),
    ],
    ["our own wait for the database", new DatabaseTimeoutError("ping: no answer in 10 ms")],
    ["a code kept only in the message", new Error("Connection error: connect ECONNREFUSED")],
    [
      "a timeout, by its class name",
      Object.assign(new Error("t"), { name: "ConnectionTimeoutError" }),
    ],
    ["a kafkajs connection error", new KafkaJSConnectionError("Connection timeout")],
    [
      "kafkajs giving up on a connection error",
      new KafkaJSNumberOfRetriesExceeded(new KafkaJSConnectionError("Connection timeout"), {
        retryCount: 5,
        retryTime: 100,
      }),
    ],
    ["an unavailable AppError", new RetryLaterError("unavailable", "too busy", 5)],
  ])("%s is transient", (_, err) => {
    expect(isTransient(err)).toBe(true);
  });

  test.each<[string, unknown]>([
    ["a plain error", new Error("boom")],
    ["a wrong password", withCode("password authentication failed", "28P01")],
    ["a missing database", withCode('database "x" does not exist', "3D000")],
    ["a unique violation", withCode("duplicate key", "23505")],
    ["a validation error", new ValidationError("bad title")],
    [
      "a broker error kafkajs does not retry",
      new KafkaJSProtocolError(
        Object.assign(new Error("Not authorized to access topics"), {
          type: "TOPIC_AUTHORIZATION_FAILED",
          code: 29,
          retriable: false,
        }),
      ),
    ],
    ["a word that only contains a code", new Error("XECONNREFUSEDX")],
    ["a thrown string", "ECONNREFUSED"],
    ["nothing", undefined],
  ])("%s is not", (_, err) => {
    expect(isTransient(err)).toBe(false);
  });
});

describe("retryOn", () => {
  test("a transient error is retried, with the waits given to `sleep`", async () => {
    const { sleep, delays } = recordingSleep();
    const f = failing(2, () => withCode("connect ECONNREFUSED", "ECONNREFUSED"));
    expect(await retry(f.op, { times: 3, delayMs: 10, retryOn: isTransient, sleep })).toBe(3);
    expect(delays).toEqual([10, 10]);
  });

  test("an error it rejects fails at once, without a wait or a log line", async () => {
    const { sleep, delays } = recordingSleep();
    const { logger, lines } = capturingLogger();
    const refusal = withCode("password authentication failed", "28P01");
    const f = failing(5, () => refusal);
    const caught = await retry(f.op, { times: 3, retryOn: isTransient, sleep, logger }).catch(
      (e: unknown) => e,
    );
    expect(caught).toBe(refusal);
    expect(f.calls()).toBe(1);
    expect(delays).toEqual([]);
    expect(lines).toEqual([]);
  });

  test("both filters must accept: `exceptions` first, then `retryOn`", async () => {
    const f = failing(5, () => new OtherError("connect ECONNREFUSED"));
    await expect(
      retry(f.op, { times: 3, delayMs: 0, exceptions: [TransientError], retryOn: isTransient }),
    ).rejects.toThrow(OtherError);
    expect(f.calls()).toBe(1);
  });

  test("does not override the AppErrors that are never retried", async () => {
    const f = failing(5, () => new NotFoundError("gone"));
    await expect(retry(f.op, { times: 3, delayMs: 0, retryOn: () => true })).rejects.toThrow(
      NotFoundError,
    );
    expect(f.calls()).toBe(1);
  });
});

describe("@retryable", () => {
  class Repository {
    calls = 0;
    constructor(
      readonly logger: Logger,
      private readonly failures: number,
    ) {}

    @retryable({ times: 3, delayMs: 1 })
    async find(id: string, suffix: string): Promise<string> {
      this.calls += 1;
      if (this.calls <= this.failures) throw new TransientError(`flaky ${this.calls}`);
      return `${id}${suffix}`;
    }

    @retryable({ times: 3, delayMs: 1 })
    async missing(): Promise<never> {
      this.calls += 1;
      throw new NotFoundError("gone");
    }
  }

  test.each([0, 1, 2])(
    "after %d failures keeps `this`, the arguments and the return value",
    async (failures) => {
      const repo = new Repository(capturingLogger().logger, failures);
      expect(await repo.find("book-", "42")).toBe("book-42");
      expect(repo.calls).toBe(failures + 1);
    },
  );

  test("makes exactly `times` attempts and re-throws the last error", async () => {
    const repo = new Repository(capturingLogger().logger, 10);
    await expect(repo.find("a", "b")).rejects.toThrow("flaky 3");
    expect(repo.calls).toBe(3);
  });

  test("never retries a not-found error", async () => {
    const repo = new Repository(capturingLogger().logger, 0);
    await expect(repo.missing()).rejects.toThrow(NotFoundError);
    expect(repo.calls).toBe(1);
  });

  test("logs to the instance's `logger`, named Class.method", async () => {
    const { logger, lines } = capturingLogger();
    await new Repository(logger, 1).find("a", "b");
    expect(lines).toEqual([
      expect.objectContaining({ operation: "Repository.find", attempt: 1, of: 3 }),
    ]);
  });

  test("prefers `options.logger` and `options.name`", async () => {
    const own = capturingLogger();
    const given = capturingLogger();
    class Client {
      logger = own.logger;
      attempts = 0;
      @retryable({ times: 2, delayMs: 1, logger: given.logger, name: "ping" })
      async ping(): Promise<number> {
        this.attempts += 1;
        if (this.attempts === 1) throw new TransientError("down");
        return this.attempts;
      }
    }
    expect(await new Client().ping()).toBe(2);
    expect(own.lines).toEqual([]);
    expect(given.lines).toEqual([expect.objectContaining({ operation: "ping", attempt: 1 })]);
  });

  test("works on static methods, named after the class", async () => {
    const { logger, lines } = capturingLogger();
    let attempts = 0;
    class Health {
      constructor(readonly status: string) {}
      @retryable({ times: 2, delayMs: 1, logger })
      static async check(): Promise<Health> {
        attempts += 1;
        if (attempts === 1) throw new TransientError("down");
        return new Health("ok");
      }
    }
    expect(await Health.check()).toEqual(new Health("ok"));
    expect(attempts).toBe(2);
    expect(lines).toEqual([expect.objectContaining({ operation: "Health.check", attempt: 1 })]);
  });

  test("works without any logger", async () => {
    class Plain {
      attempts = 0;
      @retryable({ times: 2, delayMs: 1 })
      async run(): Promise<number> {
        this.attempts += 1;
        if (this.attempts === 1) throw new TransientError("down");
        return this.attempts;
      }
    }
    expect(await new Plain().run()).toBe(2);
  });

  test.each<[string, RetryOptions]>([
    ["times=0", { times: 0 }],
    ["delayMs=-5", { delayMs: -5 }],
  ])("rejects %s with a RangeError when the class is defined", (_, options) => {
    expect(() => retryable(options)).toThrow(RangeError);
  });

  describe("with options from the instance and the call", () => {
    class Connection {
      readonly delays: number[] = [];
      readonly seen: string[] = [];
      constructor(
        readonly attempts: number,
        private readonly errors: unknown[],
      ) {}

      @retryable((c: Connection, [label]: [string]) => ({
        name: `open ${label}`,
        times: c.attempts,
        delayMs: 5,
        retryOn: isTransient,
        sleep: async (ms) => {
          c.delays.push(ms);
        },
      }))
      async open(label: string): Promise<string> {
        this.seen.push(label);
        const error = this.errors.shift();
        if (error) throw error;
        return `${label} open`;
      }
    }
    const refused = () => withCode("connect ECONNREFUSED", "ECONNREFUSED");

    test("takes `times` and `sleep` from the instance, `name` from the arguments", async () => {
      const { logger, lines } = capturingLogger();
      const connection = Object.assign(new Connection(3, [refused(), refused()]), { logger });
      expect(await connection.open("db")).toBe("db open");
      expect(connection.seen).toEqual(["db", "db", "db"]);
      expect(connection.delays).toEqual([5, 5]);
      expect(lines).toEqual([
        expect.objectContaining({ operation: "open db", attempt: 1, of: 3 }),
        expect.objectContaining({ operation: "open db", attempt: 2, of: 3 }),
      ]);
    });

    test("each instance its own `times`", async () => {
      const once = new Connection(1, [refused()]);
      await expect(once.open("a")).rejects.toThrow("ECONNREFUSED");
      expect(once.seen).toHaveLength(1);
      const twice = new Connection(2, [refused()]);
      expect(await twice.open("b")).toBe("b open");
      expect(twice.seen).toHaveLength(2);
    });

    test("a non-transient error fails at once", async () => {
      const connection = new Connection(3, [withCode("wrong password", "28P01")]);
      await expect(connection.open("db")).rejects.toThrow("wrong password");
      expect(connection.seen).toHaveLength(1);
      expect(connection.delays).toEqual([]);
    });

    test("invalid options from the function are refused at the call, before any attempt", async () => {
      const connection = new Connection(0, []);
      await expect(connection.open("db")).rejects.toThrow(RangeError);
      expect(connection.seen).toEqual([]);
    });
  });
});
