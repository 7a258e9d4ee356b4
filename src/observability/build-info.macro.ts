/**
 * Bun macro: runs when the executable is built (and when Bun loads the module from source), so
 * the binary knows the commit it was built from without a .git folder beside it.
 */
export function gitCommit(): string {
  try {
    const proc = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], {
      cwd: import.meta.dir,
      stdout: "pipe",
      stderr: "ignore",
    });
    const commit = proc.stdout.toString().trim();
    if (proc.exitCode === 0 && /^[0-9a-f]{7,40}$/.test(commit)) return commit;
  } catch {
    // No git here (a Docker build without .git): said below.
  }
  return process.env.PETBOOKS_COMMIT?.trim() || "unknown";
}
