/** Reading the Prometheus text format back, for tests and benchmarks. */

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
  const proc = Bun.spawn([promtool, "check", "metrics"], {
    stdin: new Blob([text]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return code === 0 ? undefined : `promtool check metrics exited ${code}: ${out}${err}`;
}
