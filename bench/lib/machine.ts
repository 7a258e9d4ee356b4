/** What the figures were measured on, and how busy the machine was meanwhile. */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";

/** The 1, 5 and 15 minute load averages, e.g. "1.52 0.98 0.71". */
export const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");

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
