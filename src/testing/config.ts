/** For tests: what loadConfig refuses in `env`, as the lines of its one ConfigError. */
import { loadConfig } from "../config.ts";
import { ConfigError } from "../errors.ts";

/** The problems named for `env`, none when it loads; any other error is thrown. */
export function configProblems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}
