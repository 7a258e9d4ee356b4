import { describe, expect, test } from "bun:test";
import { parseCpuTimes, stolenShare } from "./machine.ts";

describe("CPU time taken by the host", () => {
  test("reads the total and the steal from /proc/stat's cpu line", () => {
    const stat = "cpu  100 5 50 800 10 0 20 15 7 0\ncpu0 50 2 25 400 5 0 10 8 3 0\n";
    // user nice system idle iowait irq softirq steal; guest (7) is already in user.
    expect(parseCpuTimes(stat)).toEqual({ total: 1000, steal: 15 });
  });

  test("the share between two readings is the steal over all the time that passed", () => {
    expect(stolenShare({ total: 1000, steal: 15 }, { total: 3000, steal: 115 })).toBe("5.0%");
    expect(stolenShare({ total: 1000, steal: 15 }, { total: 1000, steal: 15 })).toBe("-");
  });

  test("a file without a cpu line is an error, not a zero", () => {
    expect(() => parseCpuTimes("intr 1 2 3\n")).toThrow("no cpu line");
  });
});
