import { describe, expect, test } from "bun:test";
import { NotFoundError } from "./errors.ts";
import { createLogger } from "./logger.ts";
import { retry } from "./retry.ts";

class TransientError extends Error {}

function failing(failures: number, error: () => Error = () => new TransientError("flaky")) {
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
    [0, 3, 1],
    [1, 3, 2],
    [2, 3, 3],
  ])("%d failures with times=%d succeeds on attempt %d", async (failures, times, attempt) => {
    const f = failing(failures);
    expect(await retry(f.op, { times, delayMs: 1 })).toBe(attempt);
    expect(f.calls()).toBe(attempt);
  });

  test.each([1, 2, 5])(
    "makes exactly times=%d attempts, then re-throws the last error",
    async (times) => {
      let n = 0;
      const op = async () => {
        n += 1;
        throw new TransientError(`failure ${n}`);
      };
      await expect(retry(op, { times, delayMs: 1 })).rejects.toThrow(`failure ${times}`);
      expect(n).toBe(times);
    },
  );

  test("does not retry errors outside `exceptions`", async () => {
    const f = failing(5, () => new NotFoundError("gone"));
    await expect(
      retry(f.op, { times: 3, delayMs: 1, exceptions: [TransientError] }),
    ).rejects.toThrow(NotFoundError);
    expect(f.calls()).toBe(1);
  });

  test("waits between attempts without blocking, growing when exponential", async () => {
    const f = failing(2);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = performance.now();
    await retry(f.op, { times: 3, delayMs: 40, exponential: true });
    clearInterval(timer);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(115); // 40 + 80, jitter only adds
    expect(ticks).toBeGreaterThan(5);
  });

  test("logs each failed attempt", async () => {
    const lines: string[] = [];
    const f = failing(2);
    await retry(f.op, {
      times: 3,
      delayMs: 1,
      name: "flaky thing",
      logger: createLogger("debug", (l) => lines.push(l)),
    });
    expect(lines.map((l) => JSON.parse(l).attempt)).toEqual([1, 2]);
    expect(JSON.parse(lines[0] as string).operation).toBe("flaky thing");
  });

  test("rejects a nonsensical attempt count", async () => {
    await expect(retry(async () => 1, { times: 0 })).rejects.toThrow(RangeError);
  });
});
