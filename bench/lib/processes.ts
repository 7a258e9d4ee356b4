/** Building the binary and running the servers under test, each pinned to its own core. */

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { buildExecutable, MINIFY_FLAGS } from "../../scripts/build.ts";
import { runCommand } from "../../scripts/run-command.ts";

export const ROOT = resolve(import.meta.dir, "../..");
/** Servers under test run on this core; load generators (wrk, h2load, pgbench) on the other. */
export const SERVER_CORE = 0;
export const LOAD_CORE = 1;

const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 15_000;

type Env = Record<string, string>;

/**
 * The allocator setting the Docker image gives every petbooks command (Dockerfile,
 * docs/operations.md#memory-allocator). The benches run petbooks' servers and exports with it,
 * and the ceilings' servers too, so that both sides run as deployed.
 */
export const ALLOCATOR_ENV = { MIMALLOC_PURGE_DELAY: "-1" };

/** Only what the children need: an inherited DATABASE_URL must never reach them. */
export function childEnv(extra: Env): Env {
  const base: Env = {};
  for (const name of ["PATH", "HOME", "TMPDIR"]) {
    const value = process.env[name];
    if (value !== undefined) base[name] = value;
  }
  return { ...base, ...extra };
}

/** Runs a command to completion; its output is shown only if it fails. */
export async function runChecked(cmd: string[], env: Env = childEnv({})): Promise<string> {
  const { code, stdout, stderr } = await runCommand(cmd, { cwd: ROOT, env });
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited with ${code}\n${stdout}${stderr}`);
  return stdout;
}

/** Builds the current sources the way `bun run build` does, into `dir` (./petbooks untouched). */
export async function buildPetbooks(dir: string): Promise<string> {
  const outfile = join(dir, "petbooks");
  await buildExecutable(outfile);
  return outfile;
}

/** Compiles another entry point (a server variant) with the flags the binary is built with. */
export async function compile(entry: string, outfile: string): Promise<string> {
  await runChecked([
    "bun",
    "build",
    "--compile",
    ...MINIFY_FLAGS,
    join(ROOT, entry),
    "--outfile",
    outfile,
  ]);
  return outfile;
}

/** Distinct free ports, all found before any is released. */
export async function freePorts(count: number): Promise<number[]> {
  const probes = Array.from({ length: count }, () =>
    Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() }),
  );
  const ports = probes.map((probe) => probe.port);
  await Promise.all(probes.map((probe) => probe.stop(true)));
  return ports.map((port) => {
    if (port === undefined) throw new Error("could not find a free port");
    return port;
  });
}

export function exitReason(proc: Subprocess): string | undefined {
  if (proc.signalCode) return `killed by ${proc.signalCode}`;
  return proc.exitCode === null ? undefined : `exited with ${proc.exitCode}`;
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stopProcess(proc: Subprocess, graceMs = STOP_GRACE_MS): Promise<void> {
  if (exitReason(proc)) return;
  proc.kill("SIGTERM");
  // A server paused by whilePaused would only act on the SIGTERM once continued.
  proc.kill("SIGCONT");
  const stopped = await Promise.race([proc.exited.then(() => true), Bun.sleep(graceMs)]);
  if (stopped !== true) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

/** A line of /proc/<pid>/status in MB (VmRSS now, VmHWM the peak), undefined once it is gone. */
function statusMb(pid: number, field: "VmRSS" | "VmHWM"): number | undefined {
  try {
    const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
      readFileSync(`/proc/${pid}/status`, "utf8"),
    )?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

export const rssMb = (pid: number) => statusMb(pid, "VmRSS");
export const peakRssMb = (pid: number) => statusMb(pid, "VmHWM");

const TICKS_PER_SECOND = Number(
  Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim() || 100,
);

/** The fields of /proc/<pid>/stat after the command's name (the first is the state), or none. */
function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

const ticks = (fields: string[], ...indexes: number[]) =>
  indexes.reduce((sum, i) => sum + Number(fields[i]), 0) / TICKS_PER_SECOND;

/**
 * Starts reading CPU seconds with `read` (cpuSeconds, treeCpuSeconds); the returned function
 * gives the CPU used since then per unit of work (requests, transactions), in µs.
 */
export function cpuMeter(read: () => number): (units: number) => number {
  const start = read();
  return (units) => ((read() - start) * 1e6) / units;
}

/** The command name of a process (/proc/<pid>/comm), or undefined when it is not here. */
export function commandOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system, all threads) a process has used so far; NaN once it is gone. */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return fields ? ticks(fields, 11, 12) : Number.NaN;
}

/** What treeCpuSeconds reads of /proc: a process's stat fields (statFields), and the pids. */
export interface ProcReader {
  stat(pid: number | string): string[] | undefined;
  pids(): string[];
}

const PROC: ProcReader = {
  stat: statFields,
  pids: () => readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)),
};

/**
 * CPU seconds a process and all its children have used so far: its own, the live children's,
 * and those of the children that ended (which the kernel adds to the parent once it has waited
 * for them). For PostgreSQL's postmaster, that is the whole server, the backends of connections
 * that came and went included. A child waited for during the scan would be in neither part
 * (gone from /proc, added to the parent after the parent was read), or in both (read live, then
 * added), and pgbench's backends end just as its run is read: twelve 3 s runs of one statement
 * read 39 to 400 µs of PostgreSQL CPU per transaction, 171 to 192 once the scan is repeated until
 * the parent's ended-children time is the same before and after it.
 */
export function treeCpuSeconds(pid: number, proc: ProcReader = PROC): number {
  for (let attempt = 1; ; attempt++) {
    const before = proc.stat(pid);
    if (!before) return Number.NaN;
    let live = 0;
    for (const entry of proc.pids()) {
      const fields = proc.stat(entry);
      if (fields?.[1] === String(pid)) live += ticks(fields, 11, 12);
    }
    const after = proc.stat(pid);
    if (!after) return Number.NaN;
    const settled = ticks(before, 13, 14) === ticks(after, 13, 14);
    if (settled || attempt === 10) return ticks(after, 11, 12, 13, 14) + live;
  }
}

/** A process's state letter (R running, S asleep, T stopped...), or undefined once it is gone. */
export const processState = (pid: number): string | undefined => statFields(pid)?.[0];

/** The parent of a process, or undefined when it is not on this machine. */
export function parentPid(pid: number): number | undefined {
  const parent = statFields(pid)?.[1];
  return parent === undefined ? undefined : Number(parent);
}

/** Open file descriptors of a process (sockets included), or undefined once it is gone. */
export function openFds(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

export interface RunningServer {
  name: string;
  pid: number;
  /** http://127.0.0.1:<port> */
  baseUrl: string;
  /** Why it is no longer running, or undefined while it is. */
  exitReason(): string | undefined;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface ServerSpec {
  name: string;
  cmd: string[];
  env: Env;
  port: number;
  /** The core it is pinned to (SERVER_CORE when omitted), or null: not pinned. */
  core?: number | null;
  /**
   * True once it answers as it should: best a request only this server can answer (it needs our
   * credentials), so that another process which grabbed the same free port cannot pass for ours.
   * GET /readyz answering 2xx when omitted.
   */
  ready?: (baseUrl: string) => Promise<boolean>;
  /** Where its stderr goes (its log); inherited when omitted. */
  logFile?: string;
  readyTimeoutMs?: number;
  /** Between two readiness checks. */
  pollMs?: number;
}

const readyz = (baseUrl: string) =>
  fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(1000) }).then((res) => res.ok);

/** Starts a server, under `taskset` when pinned (which execs it, so the pid is the server's). */
export async function startServer(spec: ServerSpec): Promise<RunningServer> {
  const core = spec.core === undefined ? SERVER_CORE : spec.core;
  const pin = core === null ? [] : ["taskset", "-c", String(core)];
  const proc = Bun.spawn([...pin, ...spec.cmd], {
    cwd: ROOT,
    env: spec.env,
    stdout: "ignore",
    stderr: spec.logFile ? Bun.file(spec.logFile) : "inherit",
  });
  const server: RunningServer = {
    name: spec.name,
    pid: proc.pid,
    baseUrl: `http://127.0.0.1:${spec.port}`,
    exitReason: () => exitReason(proc),
    stop: (graceMs) => stopProcess(proc, graceMs),
  };
  const deadline = Date.now() + (spec.readyTimeoutMs ?? READY_TIMEOUT_MS);
  try {
    for (;;) {
      const exited = exitReason(proc);
      if (exited) throw new Error(`${spec.name} ${exited} before it was ready`);
      if (await (spec.ready ?? readyz)(server.baseUrl).catch(() => false)) return server;
      if (Date.now() > deadline) throw new Error(`${spec.name} was not ready in time`);
      await Bun.sleep(spec.pollMs ?? 100);
    }
  } catch (err) {
    await server.stop();
    const log = spec.logFile && existsSync(spec.logFile) ? readFileSync(spec.logFile, "utf8") : "";
    throw new Error(`${(err as Error).message}\n${log.slice(-2000)}`);
  }
}

/**
 * Runs `run` with `servers` stopped (SIGSTOP), continued (SIGCONT) after: a measured run has the
 * machine to itself, not shared with the idle work (timers, collections, a relay's polls) of the
 * servers measured before or after it.
 */
export async function whilePaused<T>(
  servers: readonly Pick<RunningServer, "pid">[],
  run: () => Promise<T>,
): Promise<T> {
  for (const { pid } of servers) process.kill(pid, "SIGSTOP");
  try {
    return await run();
  } finally {
    for (const { pid } of servers) process.kill(pid, "SIGCONT");
  }
}

/** Runs `run` with every server of `servers` but the subject's paused (whilePaused). */
export const withOthersPaused = <T>(
  servers: Partial<Record<string, Pick<RunningServer, "pid">>>,
  subject: string,
  run: () => Promise<T>,
): Promise<T> =>
  whilePaused(
    Object.entries(servers).flatMap(([name, server]) =>
      name === subject || !server ? [] : [server],
    ),
    run,
  );
