/** pgbench on one statement: what PostgreSQL alone manages, without any server in front. */
import { writeFileSync } from "node:fs";

export interface PgbenchRun {
  url: string;
  /** The statement, exactly as the server sends it. */
  statement: string;
  /** `simple` for a statement sent as text, `prepared` for a named prepared statement. */
  protocol: "simple" | "extended" | "prepared";
  clients: number;
  seconds: number;
  core: number;
  /** Where the script file goes. */
  scriptFile: string;
}

export interface PgbenchResult {
  tps: number;
  latencyMs: number;
  transactions: number;
  failed: number;
  /** pgbench's own CPU per transaction, in µs. */
  loadCpuUs?: number;
}

export async function runPgbench(run: PgbenchRun): Promise<PgbenchResult> {
  // pgbench reads `:name` as a variable: in simple mode only defined ones are replaced, and none
  // is defined, so the statement goes out verbatim. In the other modes every `:name` would
  // become a parameter.
  if (run.protocol !== "simple" && /:[A-Za-z_]/.test(run.statement.replaceAll("::", ""))) {
    throw new Error("pgbench would take a ':name' in this statement for a variable");
  }
  writeFileSync(run.scriptFile, `${run.statement.replace(/\s+/g, " ").trim()};\n`);
  const url = new URL(run.url);
  const cmd = ["taskset", "-c", String(run.core), "pgbench", "-n", "-j", "1"];
  cmd.push("-h", url.hostname, "-p", url.port || "5432", "-U", decodeURIComponent(url.username));
  cmd.push("-M", run.protocol, "-c", String(run.clients), "-T", String(run.seconds));
  cmd.push("-f", run.scriptFile, url.pathname.slice(1));
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  const report = `${out}${err}`;
  const tps = /^tps = ([\d.]+)/m.exec(report)?.[1];
  if (code !== 0 || tps === undefined) throw new Error(`pgbench exited with ${code}:\n${report}`);
  const transactions = Number(/actually processed: (\d+)/.exec(report)?.[1] ?? 0);
  const cpuUs = proc.resourceUsage()?.cpuTime.total;
  return {
    tps: Number(tps),
    latencyMs: Number(/^latency average = ([\d.]+) ms/m.exec(report)?.[1] ?? Number.NaN),
    transactions,
    failed: Number(/number of failed transactions: (\d+)/.exec(report)?.[1] ?? 0),
    ...(cpuUs !== undefined && transactions > 0 && { loadCpuUs: Number(cpuUs) / transactions }),
  };
}
