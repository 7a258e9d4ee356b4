/** A deliberately small flag parser: each command names the flags it takes. */
import { UsageError } from "../errors.ts";

export type FlagKind = "switch" | "boolean" | "integer";

export interface ParsedArgs {
  flags: Record<string, string | true>;
}

/**
 * `switch` flags take no value (`--help`). `boolean` flags are `--x`, `--x=true` or `--x=false`.
 * `integer` flags are `--x N` or `--x=N`.
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
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith("-")) {
      throw new UsageError(`unexpected argument "${arg}"`);
    }
    const match = /^--?([a-z][a-z-]*)(?:=(.*))?$/.exec(arg);
    const name = match?.[1] === "h" ? "help" : match?.[1];
    const kind = name ? spec[name] : undefined;
    if (!name || !kind) throw new UsageError(`unknown option ${arg}`);
    // Taking the last would quietly drop what the first said (`--has-photos --has-photos=false`).
    if (name in flags) throw new UsageError(`--${name} is given more than once`);
    let value = match?.[2];
    if (kind === "integer") {
      value ??= argv[++i];
      if (value === undefined || !/^\d{1,9}$/.test(value)) {
        throw new UsageError(
          `--${name} needs a whole number (got ${value === undefined ? "nothing" : `"${value}"`})`,
        );
      }
    } else if (value !== undefined && kind === "switch") {
      throw new UsageError(`--${name} takes no value`);
    } else if (value !== undefined && value !== "true" && value !== "false") {
      throw new UsageError(`--${name} must be true or false (got "${value}")`);
    }
    flags[name] = value ?? true;
  }
  return { flags };
}

export function booleanFlag(value: string | true | undefined): boolean | undefined {
  return value === undefined ? undefined : value === true || value === "true";
}

export function integerFlag(value: string | true | undefined, fallback: number): number {
  return typeof value === "string" ? Number(value) : fallback;
}
