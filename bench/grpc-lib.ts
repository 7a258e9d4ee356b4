/**
 * Helpers of the gRPC benchmarks (bench/grpc.bench.ts, bench/grpc-endurance.ts): their own
 * databases, the builds under test, pinned gRPC servers, h2load runs, and waiting for a quiet
 * machine.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type postgres from "postgres";
import { compile, seedBooks } from "./books-lib.ts";
import { connect, databaseUrl } from "./lib/database.ts";
import { childEnv, exitReason, ROOT, runChecked, stopProcess } from "./lib/processes.ts";

export const SERVER_CORE = 0;
export const LOAD_CORE = 1;

const OWN_DATABASE = /^petbooks_bench_grpc(_[a-z]+)?$/;

function ownDatabase(name: string): string {
  // Only ever our own databases: the name goes into DROP DATABASE.
  if (!OWN_DATABASE.test(name)) throw new Error(`not a gRPC bench database: ${name}`);
  return name;
}

async function onServer(statement: string): Promise<void> {
  const sql = connect(databaseUrl("postgres"));
  try {
    await sql.unsafe(statement);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export async function recreateDatabase(name: string): Promise<string> {
  await onServer(`drop database if exists ${ownDatabase(name)} with (force)`);
  await onServer(`create database ${ownDatabase(name)}`);
  return databaseUrl(name);
}

export const dropDatabase = (name: string) =>
  onServer(`drop database if exists ${ownDatabase(name)} with (force)`);

/** `./petbooks migrate` (the build under test) against `url`. */
export async function migrate(binary: string, url: string): Promise<void> {
  await runChecked([binary, "migrate"], childEnv({ DATABASE_URL: url, LOG_LEVEL: "warn" }));
}

/** Seeds `n` books set-based (one statement, then VACUUM ANALYZE); returns book_stats.total. */
export async function seed(url: string, n: number): Promise<number> {
  const sql = connect(url);
  try {
    await seedBooks(sql, n);
    const [row] = await sql<{ total: string }[]>`select sum(total) as total from book_stats`;
    return Number(row?.total ?? 0);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export async function withSql<T>(url: string, work: (sql: postgres.Sql) => Promise<T>) {
  const sql = connect(url);
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Builds `./petbooks` the way `bun run build` does, but into `dir`, so neither the tracked binary
 * nor someone else's rebuild of it is involved; the ceiling is built with the same flags.
 */
export const buildPetbooks = (dir: string) => compile("src/main.ts", join(dir, "petbooks"));

export async function buildBinaries(dir: string): Promise<{ petbooks: string; ceiling: string }> {
  const [petbooks, ceiling] = await Promise.all([
    compile("src/main.ts", join(dir, "petbooks")),
    compile("bench/grpc-ceiling-server.ts", join(dir, "grpc-ceiling")),
  ]);
  return { petbooks, ceiling };
}

/** A Connect gRPC client whose HTTP/2 session can be closed (otherwise it keeps us alive). */
export function grpcClient<T extends DescService>(url: string, service: T) {
  const sessionManager = new Http2SessionManager(url);
  const transport = createGrpcTransport({ baseUrl: url, sessionManager });
  const client: Client<T> = createClient(service, transport);
  return { client, close: () => sessionManager.abort() };
}

export interface PinnedServer {
  name: string;
  pid: number;
  url: string;
  /** Where its stderr (its log) goes. */
  logFile: string;
  exitReason(): string | undefined;
  stop(): Promise<void>;
}

export interface PinnedServerSpec {
  name: string;
  cmd: string[];
  env: Record<string, string>;
  port: number;
  core: number;
  logFile: string;
  /** Resolves true once the server answers as it should (only ours can: not a stray process). */
  ready: (url: string) => Promise<boolean>;
  readyTimeoutMs?: number;
}

/** Starts a server under `taskset` (which execs it: the pid is the server's own). */
export async function startPinnedServer(spec: PinnedServerSpec): Promise<PinnedServer> {
  const proc = Bun.spawn(["taskset", "-c", String(spec.core), ...spec.cmd], {
    cwd: ROOT,
    env: spec.env,
    stdout: "ignore",
    stderr: Bun.file(spec.logFile),
  });
  const url = `http://127.0.0.1:${spec.port}`;
  const server: PinnedServer = {
    name: spec.name,
    pid: proc.pid,
    url,
    logFile: spec.logFile,
    exitReason: () => exitReason(proc),
    // gRPC drains its streams for up to 10 s on SIGTERM.
    stop: () => stopProcess(proc, 15_000),
  };
  const deadline = Date.now() + (spec.readyTimeoutMs ?? 30_000);
  try {
    for (;;) {
      const exited = exitReason(proc);
      if (exited) throw new Error(`${spec.name} ${exited} before it was ready`);
      if (await spec.ready(url).catch(() => false)) return server;
      if (Date.now() > deadline) throw new Error(`${spec.name} was not ready in time`);
      await Bun.sleep(200);
    }
  } catch (err) {
    await server.stop();
    const log = readFileSync(spec.logFile, "utf8").slice(-2000);
    throw new Error(`${(err as Error).message}\n${log}`);
  }
}

/** The 5-byte gRPC message prefix (uncompressed, big-endian length), then the message. */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(5 + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, 5);
  return frame;
}

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
  logFile: string;
  /** The server under load: its CPU time over the measured part of the run is reported. */
  serverPid?: number;
}

export interface H2loadResult {
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  done: number;
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  status2xx: number;
  statusOther: number;
  /**
   * Response DATA bytes (the gRPC frames) per finished request: exact only for a `requests` run,
   * since h2load counts the traffic of the warm-up too and of requests cut off at the end.
   */
  dataBytesPerCall: number;
  /** Requests that the per-request log holds (the latency sample). */
  logged: number;
  /** Server CPU (user + system, all threads) per call over the measured part, in µs. */
  serverCpuUsPerCall: number;
  /** CPU time h2load itself used, in ms. */
  h2loadCpuMs: number;
  /** The command line and its full output, for the record. */
  command: string;
  output: string;
}

function num(pattern: RegExp, text: string, what: string): number {
  const m = pattern.exec(text);
  if (!m?.[1]) throw new Error(`h2load output has no ${what}:\n${text}`);
  return Number(m[1]);
}

/** The p-th percentile (0..100) of ascending `sorted`, nearest rank. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? Number.NaN;
}

/**
 * Per-request durations (ms) from h2load's --log-file: tab-separated start time (µs since the
 * epoch), status code, and µs until the end of the response.
 */
function logDurations(path: string): Float64Array {
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n").filter((line) => line !== "");
  const durations = new Float64Array(lines.length);
  lines.forEach((line, i) => {
    durations[i] = Number(line.split("\t")[2]) / 1000;
  });
  return durations.sort();
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
  // The server's CPU from the end of the warm-up (timed runs) or the start (counted runs).
  const serverCpu = (async () => {
    if (run.serverPid === undefined) return Number.NaN;
    if (run.requests === undefined) await Bun.sleep(run.warmupSeconds * 1000);
    const from = cpuTicks(run.serverPid);
    await proc.exited;
    return ((cpuTicks(run.serverPid) - from) * 1000) / TICKS_PER_SECOND;
  })();
  const [code, out, err, serverCpuMs] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    serverCpu,
  ]);
  const output = `${out}${err}`;
  if (code !== 0) throw new Error(`h2load exited with ${code}:\n${output}`);
  const done = num(/(\d+) done/, out, "done");
  const dataBytes = num(/traffic: .*, [\d.]+\S* \((\d+)\) data/, out, "data traffic");
  const durations = logDurations(run.logFile);
  const sum = durations.reduce((a, b) => a + b, 0);
  return {
    callsPerSecond: num(/finished in [\d.]+s, ([\d.]+) req\/s/, out, "req/s"),
    p50Ms: percentile(durations, 50),
    p99Ms: percentile(durations, 99),
    meanMs: sum / durations.length,
    maxMs: durations.at(-1) ?? Number.NaN,
    done,
    succeeded: num(/(\d+) succeeded/, out, "succeeded"),
    failed: num(/(\d+) failed/, out, "failed"),
    errored: num(/(\d+) errored/, out, "errored"),
    timeout: num(/(\d+) timeout/, out, "timeout"),
    status2xx: num(/status codes: (\d+) 2xx/, out, "2xx"),
    statusOther: ["3xx", "4xx", "5xx"]
      .map((s) => num(new RegExp(`(\\d+) ${s}`), out, s))
      .reduce((a, b) => a + b, 0),
    dataBytesPerCall: dataBytes / Math.max(1, done),
    logged: durations.length,
    serverCpuUsPerCall: (serverCpuMs * 1000) / Math.max(1, done),
    h2loadCpuMs: Number(proc.resourceUsage()?.cpuTime.total ?? 0n) / 1000,
    command: cmd.join(" "),
    output: out.trim(),
  };
}

export const loadAverage = () => loadavg()[0] ?? 0;

export const TICKS_PER_SECOND = Number(
  Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim() || 100,
);

/** CPU ticks (user + system, all threads) a process has used, or NaN once it is gone. */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  } catch {
    return Number.NaN;
  }
}

/** Busy ticks of the whole machine (user, nice, system, steal; not irq/softirq) since boot. */
function machineBusyTicks(): number {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/) ?? [];
  const f = (i: number) => Number(cpu[i] ?? 0);
  return f(1) + f(2) + f(3) + f(8);
}

/** Ticks of the processes that are ours: those whose command line names one of `markers`. */
function ownTicks(markers: string[]): Map<number, number> {
  const own = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
      if (pid !== process.pid && !markers.some((m) => cmdline.includes(m))) continue;
      const ticks = cpuTicks(pid);
      if (!Number.isNaN(ticks)) own.set(pid, ticks);
    } catch {
      // Gone while we looked.
    }
  }
  return own;
}

/**
 * CPU that everything else on the machine used meanwhile, in cores: the machine's busy time
 * (from /proc/stat, so short-lived processes count too) minus that of our own processes (this
 * one, and those whose command line names `markers`: the servers, h2load, the PostgreSQL
 * backends of our database) and minus `extraOwnMs` (our processes that ended meanwhile).
 */
export async function foreignCores<T>(
  markers: string[],
  work: () => Promise<T>,
  extraOwnMs: (value: T) => number,
): Promise<{ value: T; foreignCores: number }> {
  const started = performance.now();
  const busy0 = machineBusyTicks();
  const own0 = ownTicks(markers);
  const value = await work();
  const busy1 = machineBusyTicks();
  const own1 = ownTicks(markers);
  let own = 0;
  for (const [pid, ticks] of own1) own += ticks - (own0.get(pid) ?? 0);
  const seconds = (performance.now() - started) / 1000;
  const ownSeconds = own / TICKS_PER_SECOND + extraOwnMs(value) / 1000;
  const foreign = (busy1 - busy0) / TICKS_PER_SECOND - ownSeconds;
  return { value, foreignCores: Math.max(0, foreign) / seconds };
}

/**
 * Other benchmark processes on the machine (load generators, bench scripts, experiments), not
 * counting this process and its children, nor anything whose command line names `ownMarkers`.
 */
export function otherBenchmarks(ownMarkers: string[]): string[] {
  const found: string[] = [];
  const pattern = /wrk|h2load|bench|exp\.ts/;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      if (!pattern.test(cmdline) || ownMarkers.some((m) => cmdline.includes(m))) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid) continue;
      found.push(`${pid} ${cmdline.slice(0, 120)}`);
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

export interface QuietWait {
  quiet: boolean;
  waitedSeconds: number;
  load: number;
  others: string[];
}

/**
 * Polls every `pollSeconds` (at most `maxSeconds`) until no other benchmark runs and the 1-minute
 * load average is under `maxLoad`.
 */
export async function waitForQuietMachine(
  ownMarkers: string[],
  opts: { maxLoad: number; pollSeconds: number; maxSeconds: number },
  progress: (message: string) => void,
): Promise<QuietWait> {
  const started = performance.now();
  for (;;) {
    const others = otherBenchmarks(ownMarkers);
    const load = loadAverage();
    const waitedSeconds = (performance.now() - started) / 1000;
    if (others.length === 0 && load < opts.maxLoad) {
      return { quiet: true, waitedSeconds, load, others };
    }
    if (waitedSeconds >= opts.maxSeconds) return { quiet: false, waitedSeconds, load, others };
    progress(
      `machine busy (load ${load.toFixed(2)}, ${others.length} other benchmark processes` +
        `${others[0] ? `, e.g. ${others[0]}` : ""}); waiting`,
    );
    await Bun.sleep(opts.pollSeconds * 1000);
  }
}

/** Resident set size of a process in MB (VmRSS), or undefined once it is gone. */
export function rssMb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/** Open file descriptors of a process (sockets included), or undefined once it is gone. */
export function openFds(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

export function machineFacts(): string {
  const nproc = Bun.spawnSync(["nproc", "--all"]).stdout.toString().trim();
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1];
  const h2 = Bun.spawnSync(["h2load", "--version"]).stdout.toString().trim();
  return `nproc=${nproc} cpu="${cpu ?? "unknown"}" bun=${Bun.version} ${h2}`;
}

export const fileSize = (path: string) => statSync(path).size;
