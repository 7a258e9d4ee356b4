/** Command-line options declared once: parsed, checked and described in the usage from one spec. */
import { parseArgs } from "node:util";

export type OptionSpec =
  | { int: number; min?: number; max?: number; help: string }
  | { flag: true; help: string }
  | { text?: string; choices?: readonly string[]; list?: boolean; help: string };

type Value<S> = S extends { int: number }
  ? number
  : S extends { flag: true }
    ? boolean
    : S extends { text: string }
      ? string
      : string | undefined;
export type Options<Spec> = { [K in keyof Spec]: Value<Spec[K]> };

/** `scrapeEvery` is --scrape-every, `skip1m` is --skip-1m. */
const flagName = (key: string) => key.replace(/([A-Z]|\d+)/g, (m) => `-${m.toLowerCase()}`);

export function usage(script: string, spec: Record<string, OptionSpec>): string {
  const lines = Object.entries(spec).map(([key, s]) => {
    const arg = "int" in s ? " N" : "flag" in s ? "" : " VALUE";
    const dflt =
      "int" in s ? ` (default ${s.int})` : "text" in s && s.text ? ` (default ${s.text})` : "";
    return `  ${`--${flagName(key)}${arg}`.padEnd(18)} ${s.help}${dflt}`;
  });
  return [`usage: bun ${script} [options]`, ...lines].join("\n");
}

/** The options, or undefined for --help; throws with a message naming a bad option. */
export function parseOptions<Spec extends Record<string, OptionSpec>>(
  argv: string[],
  spec: Spec,
): Options<Spec> | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean" },
      ...Object.fromEntries(
        Object.entries(spec).map(([k, s]) => [
          flagName(k),
          { type: "flag" in s ? "boolean" : "string" },
        ]),
      ),
    } as Record<string, { type: "boolean" | "string" }>,
  });
  if (values.help) return undefined;
  const parsed: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(spec)) {
    const raw = values[flagName(key)];
    if ("int" in s) {
      const n = raw === undefined ? s.int : integerOption(String(raw), flagName(key), s.min);
      parsed[key] = s.max === undefined ? n : Math.min(n, s.max);
    } else if ("flag" in s) parsed[key] = raw === true;
    else {
      const text = (raw as string | undefined) ?? s.text;
      const items = text === undefined ? [] : s.list ? text.split(",") : [text];
      const bad = s.choices ? items.filter((item) => !s.choices?.includes(item)) : [];
      if (bad.length)
        throw new Error(
          `--${flagName(key)}: ${bad.join(", ")} is not one of ${s.choices?.join(", ")}`,
        );
      parsed[key] = text;
    }
  }
  return parsed as Options<Spec>;
}

/** An integer command-line option, at least `min`; a clear error names the option otherwise. */
export function integerOption(raw: string, name: string, min = 1): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new Error(`--${name} must be an integer >= ${min}`);
  }
  return n;
}
