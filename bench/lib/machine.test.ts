import { describe, expect, test } from "bun:test";
import { coreBusyShares, parseCoreTimes, parseCpuTimes, stolenShare } from "./machine.ts";

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

describe("how busy each core was", () => {
  const stat = (core0: string, core1: string) =>
    `cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 ${core0} 0 0\ncpu1 ${core1} 0 0\nintr 5\n`;

  test("reads each core's total and idle (idle + iowait) from its cpuN line", () => {
    expect(parseCoreTimes(stat("10 0 5 80 5 0 0 0", "40 0 10 50 0 0 0 0"))).toEqual([
      { total: 100, idle: 85 },
      { total: 100, idle: 50 },
    ]);
  });

  test("the busy share between two readings is the time not idle over the time that passed", () => {
    const from = parseCoreTimes(stat("10 0 5 80 5 0 0 0", "40 0 10 50 0 0 0 0"));
    // core 0: 200 more ticks, 20 of them idle; core 1: 100 more, all busy.
    const to = parseCoreTimes(stat("150 10 25 95 10 0 10 0", "130 0 20 50 0 0 0 0"));
    expect(coreBusyShares(from, to)).toEqual([0.9, 1]);
  });

  test("a line that is not eight numbers is an error", () => {
    expect(() => parseCoreTimes("cpu0 1 2 x 4 5 6 7 8\n")).toThrow("unexpected /proc/stat");
  });
});
