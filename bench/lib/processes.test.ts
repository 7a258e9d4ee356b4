import { describe, expect, test } from "bun:test";
import { cpuSeconds, parentPid, treeCpuSeconds } from "./processes.ts";

/** A child that spends a fixed amount of work (not of time) and exits; its CPU seconds. */
async function busyChild(): Promise<number> {
  const work = "let x = 0; for (let i = 0; i < 3e8; i++) x += i; if (x < 0) console.log(x);";
  const child = Bun.spawn([process.execPath, "-e", work], { stdout: "ignore", stderr: "inherit" });
  expect(await child.exited).toBe(0);
  return Number(child.resourceUsage()?.cpuTime.total ?? 0) / 1e6;
}

describe("CPU of a process tree (PostgreSQL's, in the benches)", () => {
  test("a child's parent is this process", () => {
    const child = Bun.spawn(["sleep", "5"]);
    try {
      expect(parentPid(child.pid)).toBe(process.pid);
    } finally {
      child.kill();
    }
  });

  test("counts the CPU of children that already ended", async () => {
    const own = cpuSeconds(process.pid);
    const before = treeCpuSeconds(process.pid);
    expect(before).toBeGreaterThanOrEqual(own);
    const childCpu = await busyChild();
    expect(childCpu).toBeGreaterThan(0.05);
    // Clock ticks are 10 ms: allow two of them.
    expect(treeCpuSeconds(process.pid) - before).toBeGreaterThanOrEqual(childCpu - 0.02);
  }, 60_000);

  test("a process that is not there has no parent and no CPU", () => {
    expect(parentPid(2 ** 30)).toBeUndefined();
    expect(treeCpuSeconds(2 ** 30)).toBeNaN();
  });
});
