/** Times `petbooks export-pets > /dev/null` and reads its peak RSS from the kernel. */
import { childEnv, ROOT } from "./processes.ts";

export interface ExportRun {
  seconds: number;
  peakRssMb: number;
  /** Killed at EXPORT_TIMEOUT_S: the figures are then lower bounds. */
  timedOut: boolean;
}

/** Far above the 20 s target, so a slow export is reported rather than waited for. */
export const EXPORT_TIMEOUT_S = 60;
const BYTES_PER_MB = 1024 * 1024;

export async function timeExport(
  binary: string,
  databaseUrl: string,
  dataDir: string,
): Promise<ExportRun> {
  const started = performance.now();
  const proc = Bun.spawn([binary, "export-pets"], {
    cwd: ROOT,
    env: childEnv({ DATABASE_URL: databaseUrl, DATA_DIR: dataDir, LOG_LEVEL: "warn" }),
    stdout: Bun.file("/dev/null"),
    stderr: "pipe",
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, EXPORT_TIMEOUT_S * 1000);
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  clearTimeout(timer);
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0 && !timedOut) throw new Error(`export-pets exited with ${code}: ${err}`);
  // ru_maxrss from wait4(), in bytes: the same figure /usr/bin/time -v reports in kB.
  const maxRss = proc.resourceUsage()?.maxRSS;
  if (maxRss === undefined) throw new Error("no resource usage for export-pets");
  return { seconds, peakRssMb: maxRss / BYTES_PER_MB, timedOut };
}
