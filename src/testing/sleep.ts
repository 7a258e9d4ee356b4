import { expect } from "bun:test";

/** A `sleep` for code with injected waits (retries, backoff): it returns at once and notes each wait. */
export function recordingSleep() {
  const delays: number[] = [];
  return {
    delays,
    sleep: async (ms: number) => {
      delays.push(ms);
    },
  };
}

/**
 * Checks a connect that failed twice before it got through: two waits, `firstMs` then twice that
 * (each with up to 20% jitter), and one warning per retried attempt of `operation` (of 5).
 */
export function expectTwoRetries(
  waits: { delays: number[]; lines: Record<string, unknown>[] },
  operation: string,
  firstMs: number,
) {
  const { delays, lines } = waits;
  expect(delays).toHaveLength(2);
  expect(delays[0]).toBeWithin(firstMs, (firstMs * 6) / 5 + 0.001);
  expect(delays[1]).toBeWithin(firstMs * 2, (firstMs * 12) / 5 + 0.001);
  expect(lines).toEqual([
    expect.objectContaining({ operation, attempt: 1, of: 5 }),
    expect.objectContaining({ operation, attempt: 2, of: 5 }),
  ]);
}
