/** Runs a command to its end and collects what it printed (builds, tests, benchmarks). */

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunCommandOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** What the command reads; nothing when absent. */
  stdin?: Blob;
}

export async function runCommand(
  cmd: string[],
  { cwd, env, stdin }: RunCommandOptions = {},
): Promise<CommandResult> {
  const proc = Bun.spawn(cmd, {
    ...(cwd && { cwd }),
    ...(env && { env }),
    stdin: stdin ?? "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}
