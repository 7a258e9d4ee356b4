/** Runs wrk pinned to a core and reads throughput and latency percentiles from its report. */
import { withCoreBusy } from "./machine.ts";
import { cpuMeter, cpuSeconds } from "./processes.ts";

export interface LoadOptions {
  seconds: number;
  connections: number;
  core: number;
  headers?: Record<string, string>;
  /** A wrk Lua script (it may set the method, path, body and headers). */
  script?: string;
}

export interface LoadResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Non-2xx answers and socket errors: any of them makes the figures meaningless. */
  failures: number;
  /** wrk's own CPU per request, in µs. */
  loadCpuUs?: number;
}

const MS_PER_UNIT: Record<string, number> = { us: 0.001, ms: 1, s: 1000 };

function numberAfter(report: string, pattern: RegExp): number {
  const match = pattern.exec(report);
  if (!match?.[1]) throw new Error(`unexpected wrk output, no ${pattern}:\n${report}`);
  return Number(match[1]);
}

function percentileMs(report: string, percent: number): number {
  const match = new RegExp(`^\\s+${percent}%\\s+([\\d.]+)(us|ms|s)\\s*$`, "m").exec(report);
  const unit = match?.[2] ? MS_PER_UNIT[match[2]] : undefined;
  if (!match?.[1] || unit === undefined) {
    throw new Error(`unexpected wrk output, no ${percent}th percentile:\n${report}`);
  }
  return Number(match[1]) * unit;
}

function failures(report: string): number {
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(report)?.[1];
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(
    report,
  );
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  return Number(non2xx ?? 0) + socketErrors;
}

export function parseWrkReport(report: string): LoadResult {
  return {
    rps: numberAfter(report, /Requests\/sec:\s+([\d.]+)/),
    p50Ms: percentileMs(report, 50),
    p99Ms: percentileMs(report, 99),
    requests: numberAfter(report, /(\d+) requests in/),
    failures: failures(report),
  };
}

export async function runWrk(url: string, options: LoadOptions): Promise<LoadResult> {
  const headers = Object.entries(options.headers ?? {}).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
  const script = options.script ? ["-s", options.script] : [];
  const cmd = ["taskset", "-c", String(options.core), "wrk", "-t1", `-c${options.connections}`];
  cmd.push(`-d${options.seconds}s`, "--timeout", "10s", "--latency", ...headers, ...script, url);
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${err}`);
  const result = parseWrkReport(out);
  const cpuUs = proc.resourceUsage()?.cpuTime.total;
  return cpuUs === undefined ? result : { ...result, loadCpuUs: Number(cpuUs) / result.requests };
}

export interface ServerLoad extends LoadResult {
  /** The server's CPU (all threads) per request over the measured run, in µs. */
  cpuUs: number;
  /** The database server's CPU per request over the measured run, in µs, when measured. */
  databaseCpuUs?: number;
  /** How busy each of the machine's cores was over the measured run (0 to 1), whoever ran. */
  coreBusy?: number[];
}

/**
 * wrk on one of our servers, `warmup` seconds and then `seconds` measured, with the server's CPU
 * per request; a server that died under load says so.
 */
export async function loadServer(
  server: { name: string; pid: number; baseUrl: string; exitReason(): string | undefined },
  path: string,
  run: Omit<LoadOptions, "seconds"> & {
    seconds: number;
    warmup: number;
    /** CPU seconds of the database server so far (treeCpuSeconds), to measure it too. */
    databaseCpu?: (() => number) | undefined;
  },
): Promise<ServerLoad> {
  const url = `${server.baseUrl}${path}`;
  try {
    if (run.warmup > 0) await runWrk(url, { ...run, seconds: run.warmup });
    const serverCpu = cpuMeter(() => cpuSeconds(server.pid));
    const databaseCpu = run.databaseCpu && cpuMeter(run.databaseCpu);
    const [result, coreBusy] = await withCoreBusy(() => runWrk(url, run));
    return {
      ...result,
      coreBusy,
      cpuUs: serverCpu(result.requests),
      ...(databaseCpu && { databaseCpuUs: databaseCpu(result.requests) }),
    };
  } catch (err) {
    const exited = server.exitReason();
    throw exited ? new Error(`${server.name} ${exited} under load on ${path}`) : err;
  }
}
