import { describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import {
  commandOf,
  cpuMeter,
  cpuSeconds,
  type ProcReader,
  parentPid,
  processState,
  stopProcess,
  treeCpuSeconds,
  whilePaused,
  withOthersPaused,
} from "./processes.ts";

/** A child that spends a fixed amount of work (not of time) and exits; its CPU seconds. */
async function busyChild(): Promise<number> {
  const work = "let x = 0; for (let i = 0; i < 3e8; i++) x += i; if (x < 0) console.log(x);";
  const child = Bun.spawn([process.execPath, "-e", work], { stdout: "ignore", stderr: "inherit" });
  expect(await child.exited).toBe(0);
  return Number(child.resourceUsage()?.cpuTime.total ?? 0) / 1e6;
}

describe("CPU of a process tree (PostgreSQL's, in the benches)", () => {
  test("a child's parent is this process, and its command is named", () => {
    const child = Bun.spawn(["sleep", "5"]);
    try {
      expect(parentPid(child.pid)).toBe(process.pid);
      expect(commandOf(child.pid)).toBe("sleep");
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

  test("a meter gives the CPU since it started per unit of work, in µs", async () => {
    const perUnit = cpuMeter(() => treeCpuSeconds(process.pid));
    const childCpu = await busyChild();
    // Over 1,000 units: at least the child's CPU less two 10 ms clock ticks, in µs per unit.
    expect(perUnit(1000)).toBeGreaterThanOrEqual(((childCpu - 0.02) * 1e6) / 1000);
  }, 60_000);

  /** /proc/<pid>/stat after the name: state, ppid, 9 fields, utime, stime, cutime, cstime. */
  const stat = (ppid: number, [utime, stime, cutime, cstime]: number[]) => [
    "S",
    String(ppid),
    ...Array<string>(9).fill("0"),
    ...[utime, stime, cutime, cstime].map(String),
  ];

  /**
   * A postmaster (100) that has used 1 tick itself, and its backend (200) 500 ticks, waited for
   * (its ticks moved to the parent's ended children) during the first scan: just after the
   * first read of the parent, or just after the first read of the child.
   */
  function reapedDuringScan(when: "after the parent" | "after the child") {
    let reaped = false;
    let scans = 0;
    const proc: ProcReader = {
      pids: () => {
        scans++;
        return reaped ? ["100"] : ["100", "200"];
      },
      stat: (pid) => {
        const fields =
          String(pid) === "100"
            ? stat(1, [1, 0, reaped ? 400 : 0, reaped ? 100 : 0])
            : reaped
              ? undefined
              : stat(100, [400, 100, 0, 0]);
        if (when === "after the parent" && String(pid) === "100") reaped = true;
        if (when === "after the child" && String(pid) === "200") reaped = true;
        return fields;
      },
    };
    return { proc, scans: () => scans };
  }

  test("a child waited for while the children are read is counted once, not lost or twice", () => {
    const tick = treeCpuSeconds(1, { pids: () => [], stat: () => stat(0, [1, 0, 0, 0]) });
    for (const when of ["after the parent", "after the child"] as const) {
      const { proc, scans } = reapedDuringScan(when);
      expect(Math.round(treeCpuSeconds(100, proc) / tick)).toBe(501);
      expect(scans()).toBe(2);
    }
  });

  test("a process that is not there has no parent, no command and no CPU", () => {
    expect(commandOf(2 ** 30)).toBeUndefined();
    expect(parentPid(2 ** 30)).toBeUndefined();
    expect(treeCpuSeconds(2 ** 30)).toBeNaN();
  });
});

/** Waits (at most 10 s) for the process to be in `state`; the kernel acts on a signal soon. */
async function reaches(pid: number, state: string): Promise<string | undefined> {
  const deadline = Date.now() + 10_000;
  while (processState(pid) !== state && Date.now() < deadline) await Bun.sleep(5);
  return processState(pid);
}

/** A child that sleeps for 30 s, given to `use`, and killed after it. */
async function withSleeper(use: (child: Subprocess) => Promise<void>): Promise<void> {
  const child = Bun.spawn(["sleep", "30"]);
  try {
    await use(child);
  } finally {
    child.kill("SIGKILL");
  }
}

describe("whilePaused: the servers not being measured are stopped meanwhile", () => {
  test(
    "stopped during the run, running again after it",
    () =>
      withSleeper(async (child) => {
        const during = await whilePaused([child], () => reaches(child.pid, "T"));
        expect(during).toBe("T");
        expect(await reaches(child.pid, "S")).toBe("S");
      }),
    30_000,
  );

  test(
    "continued when the run fails too",
    () =>
      withSleeper(async (child) => {
        const failing = whilePaused([child], async () => {
          await reaches(child.pid, "T");
          throw new Error("wrk failed");
        });
        await expect(failing).rejects.toThrow("wrk failed");
        expect(await reaches(child.pid, "S")).toBe("S");
      }),
    30_000,
  );

  test(
    "withOthersPaused stops every server but the subject's",
    () =>
      withSleeper((subject) =>
        withSleeper(async (other) => {
          // Both asleep first: a child just spawned may still be running (R) for a moment.
          expect([await reaches(subject.pid, "S"), await reaches(other.pid, "S")]).toEqual([
            "S",
            "S",
          ]);
          const servers = { petbooks: subject, ceiling: other };
          const states = await withOthersPaused(servers, "petbooks", async () => {
            await reaches(other.pid, "T");
            return [processState(subject.pid), processState(other.pid)];
          });
          expect(states).toEqual(["S", "T"]);
        }),
      ),
    30_000,
  );

  test(
    "a paused server still stops at its SIGTERM, without waiting for SIGKILL",
    () =>
      withSleeper(async (child) => {
        process.kill(child.pid, "SIGSTOP");
        expect(await reaches(child.pid, "T")).toBe("T");
        // A grace far longer than the test's own timeout: only the SIGTERM can end it in time.
        await stopProcess(child, 600_000);
        expect(child.signalCode).toBe("SIGTERM");
      }),
    30_000,
  );
});
