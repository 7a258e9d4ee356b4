/** Reading the Prometheus text format back, for tests and benchmarks. */
import { runCommand } from "../../scripts/run-command.ts";

/** The value of one series, written as it appears (`name{a="b",c="d"}`); undefined if absent. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** The sum of every series of `name` whose labels include all of `labels`. */
export function sumOf(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    const labelText = rest[0] === "{" ? rest.slice(1, rest.indexOf("}")) : "";
    const parts = labelText === "" ? [] : labelText.split(/,(?=[a-z_]+=")/);
    if (wanted.every((w) => parts.includes(w)))
      total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

/** `promtool check metrics` on `text`: undefined when it passes or promtool is absent, else its complaint. */
export async function promtoolProblems(text: string): Promise<string | undefined> {
  const promtool = Bun.which("promtool");
  if (!promtool) return undefined;
  const { code, stdout, stderr } = await runCommand([promtool, "check", "metrics"], {
    stdin: new Blob([text]),
  });
  return code === 0 ? undefined : `promtool check metrics exited ${code}: ${stdout}${stderr}`;
}
