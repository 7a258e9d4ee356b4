/**
 * Timing `petbooks export-pets` (and its peak RSS, from GNU time) and PostgreSQL writing JSON
 * itself through `psql` COPY, both to /dev/null or to a hash of the bytes.
 */
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { ALLOCATOR_ENV, childEnv, ROOT } from "./processes.ts";

export interface ExportRun {
  seconds: number;
  peakRssMb: number;
}

const BYTES_PER_MB = 1024 * 1024;
const TIMEOUT_S = 300;
let runs = 0;

type Sink = "null" | "hash";

/**
 * Runs `cmd` under GNU time for its peak RSS: Bun's resourceUsage().maxRSS is the largest of every
 * child this process has waited for (the build of the binary made it 1 GB).
 */
async function timed(cmd: string[], env: Record<string, string>, sink: Sink) {
  const rssFile = `${tmpdir()}/petbooks-bench-rss-${process.pid}-${++runs}`;
  const started = performance.now();
  const proc = Bun.spawn(["/usr/bin/time", "-f", "%M", "-o", rssFile, ...cmd], {
    cwd: ROOT,
    env,
    stdout: sink === "null" ? Bun.file("/dev/null") : "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), TIMEOUT_S * 1000);
  const hashing = (async () => {
    if (sink === "null") return "";
    const hasher = new Bun.CryptoHasher("sha256");
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) hasher.update(chunk);
    return hasher.digest("hex");
  })();
  const [code, err, hash] = await Promise.all([
    proc.exited,
    new Response(proc.stderr).text(),
    hashing,
  ]);
  clearTimeout(timer);
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`${cmd.join(" ").slice(0, 200)} exited with ${code}: ${err}`);
  const peakRssMb = (Number(readFileSync(rssFile, "utf8").trim()) * 1024) / BYTES_PER_MB;
  rmSync(rssFile, { force: true });
  return { seconds, peakRssMb, hash };
}

export function timeExport(binary: string, env: Record<string, string>, sink: Sink = "null") {
  return timed(
    [binary, "export-pets"],
    childEnv({ ...ALLOCATOR_ENV, LOG_LEVEL: "warn", ...env }),
    sink,
  );
}

/**
 * `psql` running `setup` and then `COPY (query) TO STDOUT`: one line per row, written raw (CSV
 * with a quote character and a delimiter that never occur, so nothing is quoted or escaped).
 */
export function timeCopy(databaseUrl: string, setup: string, query: string, sink: Sink = "null") {
  const copy = `copy (${query}) to stdout with (format csv, quote e'\\x01', delimiter e'\\x02')`;
  const cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", databaseUrl];
  if (setup) cmd.push("-c", setup);
  cmd.push("-c", copy);
  return timed(cmd, childEnv({}), sink);
}

/** The hash of a document made of `lines` the way the export frames its pets. */
export async function framedHash(
  databaseUrl: string,
  query: string,
  frame: { open: string; separator: string; close: string },
): Promise<string> {
  const copy = `copy (${query}) to stdout with (format csv, quote e'\\x01', delimiter e'\\x02')`;
  const proc = Bun.spawn(["psql", "-X", "-q", databaseUrl, "-c", copy], {
    env: childEnv({}),
    stdout: "pipe",
    stderr: "pipe",
  });
  const text = await new Response(proc.stdout).text();
  if ((await proc.exited) !== 0) throw new Error(await new Response(proc.stderr).text());
  const lines = text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n");
  const hasher = new Bun.CryptoHasher("sha256");
  hasher.update(frame.open);
  lines.forEach((line, i) => {
    if (i > 0) hasher.update(frame.separator);
    hasher.update(line);
  });
  hasher.update(frame.close);
  return hasher.digest("hex");
}
