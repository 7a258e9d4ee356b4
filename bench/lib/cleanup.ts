/** Undo steps, run last-first whether the bench finished, failed or was interrupted. */
export class Cleanup {
  private steps: (() => unknown)[] = [];

  defer(step: () => unknown) {
    this.steps.push(step);
  }

  async run() {
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step();
      } catch (err) {
        console.error("cleanup step failed:", err);
      }
    }
  }
}

export interface BenchSpec<O> {
  usage: string;
  /** Undefined for --help; throws on a bad option. */
  parseOptions: (argv: string[]) => O | undefined;
  /** The benchmark; a number it returns is the exit code (0 otherwise). */
  run: (options: O, cleanup: Cleanup) => Promise<unknown>;
  /** Called before the cleanup steps run (to say so). */
  beforeCleanup?: () => void;
}

/**
 * What every benchmark's entry point does: parse the options (a bad one exits 2 with the usage,
 * --help prints it), run, and always run the cleanup steps, on SIGINT and SIGTERM too.
 */
export async function runBench<O>(spec: BenchSpec<O>): Promise<never> {
  let options: O | undefined;
  try {
    options = spec.parseOptions(Bun.argv.slice(2));
  } catch (err) {
    console.error(`${(err as Error).message}\n${spec.usage}`);
    process.exit(2);
  }
  if (!options) {
    console.log(spec.usage);
    process.exit(0);
  }
  const cleanup = new Cleanup();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void cleanup.run().finally(() => process.exit(130)));
  }
  let code = 1;
  try {
    const result = await spec.run(options, cleanup);
    code = typeof result === "number" ? result : 0;
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
  } finally {
    spec.beforeCleanup?.();
    await cleanup.run();
  }
  process.exit(code);
}
