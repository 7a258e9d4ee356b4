import { describe, expect, test } from "bun:test";
import { callsPerSecondOf } from "./h2load.ts";

describe("h2load's summary", () => {
  test("its rate is read whatever unit the run's time is in", () => {
    expect(callsPerSecondOf("finished in 5.01s, 6629.40 req/s, 1.2MB/s")).toBe(6629.4);
    expect(callsPerSecondOf("finished in 908.23ms, 3303.13 req/s, 529.46KB/s")).toBe(3303.13);
    expect(callsPerSecondOf("finished in 950.12us, 3157.49 req/s, 1KB/s")).toBe(3157.49);
  });

  test("output without a rate is an error that quotes it", () => {
    expect(() => callsPerSecondOf("starting benchmark...")).toThrow("h2load output has no req/s");
  });
});
