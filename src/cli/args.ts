/** A deliberately small flag parser: each command names the flags it takes. */
import { UsageError } from "../errors.ts";

export type FlagKind = "switch" | "boolean";

export interface ParsedArgs {
  flags: Record<string, string | true>;
}

/**
 * `switch` flags take no value (`--help`). `boolean` flags are `--x`, `--x=true` or `--x=false`.
 */
export function parseArgs(
  argv: string[],
  spec: Record<string, FlagKind>,
  usage?: string,
): ParsedArgs {
  try {
    return parseFlags(argv, spec);
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(err.message, usage);
    throw err;
  }
}

function parseFlags(argv: string[], spec: Record<string, FlagKind>): ParsedArgs {
  const flags: ParsedArgs["flags"] = {};
  for (const arg of argv) {
    if (!arg.startsWith("-")) {
      throw new UsageError(`unexpected argument "${arg}"`);
    }
    const match = /^--?([a-z][a-z-]*)(?:=(.*))?$/.exec(arg);
    const name = match?.[1] === "h" ? "help" : match?.[1];
    const kind = name ? spec[name] : undefined;
    if (!name || !kind) throw new UsageError(`unknown option ${arg}`);
    const value = match?.[2];
    if (value !== undefined && kind === "switch") throw new UsageError(`--${name} takes no value`);
    if (value !== undefined && value !== "true" && value !== "false") {
      throw new UsageError(`--${name} must be true or false (got "${value}")`);
    }
    flags[name] = value ?? true;
  }
  return { flags };
}

export function booleanFlag(value: string | true | undefined): boolean | undefined {
  return value === undefined ? undefined : value === true || value === "true";
}
