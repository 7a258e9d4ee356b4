/** What the figures were measured on, and how busy the machine was meanwhile. */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";

/** The 1, 5 and 15 minute load averages, e.g. "1.52 0.98 0.71". */
export const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");

/** The machine's CPU time so far, from /proc/stat's first line: all of it, and what the host took. */
export interface CpuTimes {
  total: number;
  steal: number;
}

/** /proc/stat's `cpu` line: user nice system idle iowait irq softirq steal (guest time is in user). */
export function parseCpuTimes(procStat: string): CpuTimes {
  const fields = /^cpu\s+(.+)$/m.exec(procStat)?.[1]?.trim().split(/\s+/).map(Number);
  if (!fields || fields.length < 8 || fields.some(Number.isNaN)) {
    throw new Error("unexpected /proc/stat: no cpu line");
  }
  const total = fields.slice(0, 8).reduce((sum, ticks) => sum + ticks, 0);
  return { total, steal: fields[7] as number };
}

export const cpuTimes = () => parseCpuTimes(readFileSync("/proc/stat", "utf8"));

/**
 * The share of the machine's CPU time between two readings that the host (hypervisor) gave to
 * others: time this machine's processes were ready to run and could not. A figure measured
 * meanwhile is that much slower than the machine itself.
 */
export function stolenShare(from: CpuTimes, to: CpuTimes): string {
  const total = to.total - from.total;
  return total > 0 ? `${((100 * (to.steal - from.steal)) / total).toFixed(1)}%` : "-";
}

function firstLine(cmd: string[]): string {
  try {
    const out = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
    return `${out.stdout}${out.stderr}`.trim().split("\n")[0] ?? "?";
  } catch {
    return "not installed";
  }
}

export function machineFacts(): [string, string][] {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1];
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1]);
  return [
    ["cores", firstLine(["nproc", "--all"])],
    ["cpu", cpu ?? "unknown"],
    ["memory", `${(memKb / 1024 / 1024).toFixed(1)} GiB`],
    ["kernel", firstLine(["uname", "-r"])],
    ["bun", Bun.version],
    [
      "PostgreSQL",
      firstLine(["psql", "-h", "127.0.0.1", "-U", "postgres", "-XAtc", "show server_version"]),
    ],
    ["wrk", firstLine(["wrk", "--version"]).replace(/ \[.*$/, "")],
    ["h2load", firstLine(["h2load", "--version"])],
    ["pgbench", firstLine(["pgbench", "--version"])],
  ];
}
