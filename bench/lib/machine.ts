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

/** Each core's CPU time so far, from /proc/stat's `cpuN` lines: all of it, and how much was idle. */
export interface CoreTimes {
  total: number;
  idle: number;
}

export function parseCoreTimes(procStat: string): CoreTimes[] {
  return [...procStat.matchAll(/^cpu\d+\s+(.+)$/gm)].map((line) => {
    const fields = (line[1] as string).trim().split(/\s+/).map(Number);
    if (fields.length < 8 || fields.some(Number.isNaN)) throw new Error("unexpected /proc/stat");
    // user nice system idle iowait irq softirq steal: idle and iowait are a core doing nothing.
    const idle = (fields[3] as number) + (fields[4] as number);
    return { total: fields.slice(0, 8).reduce((sum, ticks) => sum + ticks, 0), idle };
  });
}

export const coreTimes = () => parseCoreTimes(readFileSync("/proc/stat", "utf8"));

/**
 * How busy each core was between two readings (0 to 1), whoever kept it busy: which core a
 * subject saturated, and how much of the other it left idle.
 */
export function coreBusyShares(from: CoreTimes[], to: CoreTimes[]): number[] {
  return to.map((core, i) => {
    const before = from[i] ?? { total: 0, idle: 0 };
    const total = core.total - before.total;
    return total > 0 ? 1 - (core.idle - before.idle) / total : Number.NaN;
  });
}

/** `work`'s result, and how busy each core was while it ran. */
export async function withCoreBusy<T>(work: () => Promise<T>): Promise<[T, number[]]> {
  const from = coreTimes();
  const result = await work();
  return [result, coreBusyShares(from, coreTimes())];
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
