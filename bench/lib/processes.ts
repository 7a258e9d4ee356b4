/** Building the binary and running the servers under test, each pinned to its own core. */
import { copyFileSync, existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

export const ROOT = resolve(import.meta.dir, "../..");
export const BINARY = join(ROOT, "petbooks");

const BUILD_INPUTS = ["src", "drizzle", "package.json", "bun.lock"];
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;

type Env = Record<string, string>;

/** Only what the children need: an inherited DATABASE_URL must never reach them. */
export function childEnv(extra: Env): Env {
  const base: Env = {};
  for (const name of ["PATH", "HOME", "TMPDIR"]) {
    const value = process.env[name];
    if (value !== undefined) base[name] = value;
  }
  return { ...base, ...extra };
}

function newestMtimeMs(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  const entries = readdirSync(path, { recursive: true, encoding: "utf8" });
  return Math.max(stat.mtimeMs, ...entries.map((entry) => statSync(join(path, entry)).mtimeMs));
}

function binaryIsStale(): boolean {
  if (!existsSync(BINARY)) return true;
  const inputs = BUILD_INPUTS.map((p) => join(ROOT, p)).filter((p) => existsSync(p));
  return Math.max(...inputs.map(newestMtimeMs)) > statSync(BINARY).mtimeMs;
}

/** Runs a command to completion; its output is shown only if it fails. */
export async function runChecked(cmd: string[], env: Env = childEnv({})): Promise<void> {
  const proc = Bun.spawn(cmd, { cwd: ROOT, env, stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited with ${code}\n${out}${err}`);
}

/** Returns true when it had to build. */
export async function ensureBinary(): Promise<boolean> {
  if (!binaryIsStale()) return false;
  await runChecked(["bun", "run", "build"]);
  return true;
}

/** Distinct free ports, all found before any is released. */
/**
 * Runs are made from a private copy, so a rebuild of ./petbooks during the bench (someone else
 * running `bun run build`) can neither crash the servers nor change what is measured.
 */
export function stageBinary(dir: string): string {
  const copy = join(dir, "petbooks");
  copyFileSync(BINARY, copy);
  return copy;
}

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

export interface RunningServer {
  name: string;
  baseUrl: string;
  /** Why it is no longer running, or undefined while it is. */
  exitReason(): string | undefined;
  stop(): Promise<void>;
}

export function exitReason(proc: Subprocess): string | undefined {
  if (proc.signalCode) return `killed by ${proc.signalCode}`;
  return proc.exitCode === null ? undefined : `exited with ${proc.exitCode}`;
}

async function waitReady(proc: Subprocess, spec: ServerSpec, baseUrl: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const exited = exitReason(proc);
    if (exited) throw new Error(`${spec.name} ${exited} before it was ready`);
    const ready = spec.ready ?? { path: "/readyz", headers: {} };
    const ok = await fetch(`${baseUrl}${ready.path}`, {
      headers: ready.headers,
      signal: AbortSignal.timeout(1000),
    }).then(
      (res) => res.ok,
      () => false,
    );
    if (ok) return;
    await Bun.sleep(100);
  }
  throw new Error(`${spec.name} was not ready within ${READY_TIMEOUT_MS} ms`);
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stopProcess(proc: Subprocess, graceMs = STOP_GRACE_MS): Promise<void> {
  if (exitReason(proc)) return;
  proc.kill("SIGTERM");
  const stopped = await Promise.race([proc.exited.then(() => true), Bun.sleep(graceMs)]);
  if (stopped !== true) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

export interface ServerSpec {
  name: string;
  cmd: string[];
  env: Env;
  port: number;
  core: number;
  /**
   * What to poll until it answers 2xx; GET /readyz when omitted. Best a request only this server
   * answers (it needs our credentials), so that another process which grabbed the same free port
   * cannot pass for ours.
   */
  ready?: { path: string; headers: Record<string, string> };
}

/** Starts a server under `taskset` (which execs it, so the pid is the server's own). */
export async function startPinnedServer(spec: ServerSpec): Promise<RunningServer> {
  const proc = Bun.spawn(["taskset", "-c", String(spec.core), ...spec.cmd], {
    cwd: ROOT,
    env: spec.env,
    stdout: "inherit",
    stderr: "inherit",
  });
  const baseUrl = `http://127.0.0.1:${spec.port}`;
  const server = {
    name: spec.name,
    baseUrl,
    exitReason: () => exitReason(proc),
    stop: () => stopProcess(proc),
  };
  try {
    await waitReady(proc, spec, baseUrl);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}
