/** Runs h2load (HTTP/2, several streams per connection) pinned to a core, for gRPC calls. */
import { readFileSync } from "node:fs";
import { percentile } from "./stats.ts";

export interface H2loadRun {
  url: string;
  /** The request body (a gRPC frame) in a file. */
  dataFile: string;
  headers: string[];
  clients: number;
  streams: number;
  /** Timed (-D, after --warm-up-time), or a fixed number of requests (-n) when `requests` is set. */
  seconds: number;
  warmupSeconds: number;
  requests?: number;
  core: number;
  /** Per-request log (the latency sample). */
  logFile: string;
}

export interface H2loadResult {
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  done: number;
  /** Failed, errored, timed out or not HTTP 2xx: any of them voids the run. */
  failures: number;
  /**
   * Response DATA bytes per finished request: exact only for a `requests` run, since h2load
   * counts the traffic of the warm-up too and of requests cut off at the end.
   */
  dataBytesPerCall: number;
}

function num(pattern: RegExp, text: string, what: string): number {
  const m = pattern.exec(text);
  if (!m?.[1]) throw new Error(`h2load output has no ${what}:\n${text}`);
  return Number(m[1]);
}

/** The rate of h2load's summary line; a run under a second is timed in ms (or us), not s. */
export const callsPerSecondOf = (out: string) =>
  num(/finished in [\d.]+(?:s|ms|us), ([\d.]+) req\/s/, out, "req/s");

/** The gRPC message prefix (uncompressed, big-endian length), then the message. */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(5 + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, 5);
  return frame;
}

export async function h2load(run: H2loadRun): Promise<H2loadResult> {
  const cmd = ["taskset", "-c", String(run.core), "h2load", "-t", "1"];
  cmd.push("-c", String(run.clients), "-m", String(run.streams));
  if (run.requests === undefined) {
    cmd.push("-D", String(run.seconds), `--warm-up-time=${run.warmupSeconds}`);
  } else {
    cmd.push("-n", String(run.requests));
  }
  cmd.push("-d", run.dataFile, "--log-file", run.logFile);
  for (const header of run.headers) cmd.push("-H", header);
  cmd.push(run.url);
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  if (code !== 0) throw new Error(`h2load exited with ${code}:\n${out}${err}`);
  // The log: start time, status, microseconds until the end of the response, tab-separated.
  const lines = readFileSync(run.logFile, "utf8").split("\n").filter(Boolean);
  const durations = Float64Array.from(lines, (line) => Number(line.split("\t")[2]) / 1000).sort();
  const done = num(/(\d+) done/, out, "done");
  const notOk = ["3xx", "4xx", "5xx"].map((s) => num(new RegExp(`(\\d+) ${s}`), out, s));
  const failed = ["failed", "errored", "timeout"].map((s) =>
    num(new RegExp(`(\\d+) ${s}`), out, s),
  );
  return {
    callsPerSecond: callsPerSecondOf(out),
    p50Ms: percentile(durations, 50),
    p99Ms: percentile(durations, 99),
    done,
    failures: [...notOk, ...failed].reduce((a, b) => a + b, 0),
    dataBytesPerCall: num(/traffic: .*, [\d.]+\S* \((\d+)\) data/, out, "data traffic") / done,
  };
}
