import { progress } from "./context.ts";
import { type OptionSpec, type Options, parseOptions, usage } from "./options.ts";

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

export interface BenchSpec<Spec extends Record<string, OptionSpec>> {
  /** The script's path from the repository root, for the usage line. */
  script: string;
  options: Spec;
  /** The benchmark; a number it returns is the exit code (0 otherwise). */
  run: (options: Options<Spec>, cleanup: Cleanup) => Promise<unknown>;
}

/**
 * What every benchmark's entry point does: parse the options (a bad one exits 2 with the usage,
 * --help prints it), run, and always run the cleanup steps, on SIGINT and SIGTERM too.
 */
export async function runBench<Spec extends Record<string, OptionSpec>>(
  spec: BenchSpec<Spec>,
): Promise<never> {
  const help = usage(spec.script, spec.options);
  let options: Options<Spec> | undefined;
  try {
    options = parseOptions(Bun.argv.slice(2), spec.options);
  } catch (err) {
    console.error(`${(err as Error).message}\n${help}`);
    process.exit(2);
  }
  if (!options) {
    console.log(help);
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
    progress("cleaning up");
    await cleanup.run();
  }
  process.exit(code);
}
