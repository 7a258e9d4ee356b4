/** Times `petbooks export-pets > /dev/null` and reads its peak RSS from the kernel. */
import { BINARY, childEnv, ROOT } from "./processes.ts";

export interface ExportRun {
  seconds: number;
  peakRssMb: number;
}

const EXPORT_TIMEOUT_MS = 120_000;
const BYTES_PER_MB = 1024 * 1024;

export async function timeExport(databaseUrl: string, dataDir: string): Promise<ExportRun> {
  const started = performance.now();
  const proc = Bun.spawn([BINARY, "export-pets"], {
    cwd: ROOT,
    env: childEnv({ DATABASE_URL: databaseUrl, DATA_DIR: dataDir, LOG_LEVEL: "warn" }),
    stdout: Bun.file("/dev/null"),
    stderr: "pipe",
    timeout: EXPORT_TIMEOUT_MS,
  });
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`export-pets exited with ${code}: ${err}`);
  // ru_maxrss from wait4(), in bytes: the same figure /usr/bin/time -v reports in kB.
  const maxRss = proc.resourceUsage()?.maxRSS;
  if (maxRss === undefined) throw new Error("no resource usage for export-pets");
  return { seconds, peakRssMb: maxRss / BYTES_PER_MB };
}
