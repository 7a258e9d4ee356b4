import { describe, expect, test } from "bun:test";
import { formatRatio, pairedRatio } from "./stats.ts";

describe("formatRatio", () => {
  const ratio = (median: number) => ({ median, min: 0.81, max: 0.97, rounds: [] });

  test("gives the median and the min-max with two decimals", () => {
    expect(formatRatio(pairedRatio([9, 8, 10], [10, 10, 10]))).toBe("0.90 (0.80-1.00)");
  });

  test("a median that rounds to its target without being it gets a third decimal", () => {
    expect(formatRatio(ratio(0.8974), 0.9)).toBe("0.897 (0.81-0.97)");
    expect(formatRatio(ratio(0.9031), 0.9)).toBe("0.903 (0.81-0.97)");
    expect(formatRatio(ratio(0.9), 0.9)).toBe("0.90 (0.81-0.97)");
    expect(formatRatio(ratio(0.8874), 0.9)).toBe("0.89 (0.81-0.97)");
  });
});
