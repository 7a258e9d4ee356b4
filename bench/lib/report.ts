/** Tables (plain text for consoles, Markdown for the report) and the report's target verdicts. */

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}

/** A Markdown table laid out as Biome formats one: columns padded, the first left-aligned. */
export function markdownTable(header: string[], rows: string[][]): string {
  const cells = [header, ...rows].map((row) => row.map((cell) => cell.replaceAll("|", "\\|")));
  const widths = header.map((_, i) => Math.max(3, ...cells.map((row) => (row[i] ?? "").length)));
  const line = (row: string[]) =>
    `| ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join(" | ")} |`;
  const rule = `| ${widths.map((w, i) => (i === 0 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`)).join(" | ")} |`;
  const [head = [], ...body] = cells;
  return [line(head), rule, ...body.map(line)].join("\n");
}

export interface Verdict {
  target: string;
  /** What was measured, e.g. "0.93 (0.88-0.97)". */
  measured: string;
  /**
   * Undefined when it could not be judged (a run failed, or the part was skipped). "explained"
   * where the target allows a documented reason in its place and this run showed that reason
   * (embedded GET /pets: a bare server on PGlite misses the target as well).
   */
  met: Met;
}

export type Met = boolean | "explained" | undefined;

/** A verdict that holds the target: met, or explained where the target allows that. */
export const holds = (v: Pick<Verdict, "met">) => v.met === true || v.met === "explained";

/** The Markdown report: sections in order, and every target's verdict for the summary. */
export class Report {
  readonly sections: string[] = [];
  readonly verdicts: Verdict[] = [];

  section(title: string, ...paragraphs: string[]) {
    this.sections.push(`## ${title}`, ...paragraphs);
  }

  add(...paragraphs: string[]) {
    this.sections.push(...paragraphs);
  }

  judge(target: string, measured: string, met: Met) {
    this.verdicts.push({ target, measured, met });
    return met;
  }

  summary(): string {
    const word = (met: Met) =>
      met === undefined
        ? "not judged"
        : met === "explained"
          ? "out of reach, explained"
          : met
            ? "met"
            : "**missed**";
    return markdownTable(
      ["target (medians of interleaved rounds)", "measured: median (min-max)", "verdict"],
      this.verdicts.map((v) => [v.target, v.measured, word(v.met)]),
    );
  }
}

export const fmt = {
  int: (n: number) => Math.round(n).toLocaleString("en-US"),
  ms: (n: number) => n.toFixed(n < 10 ? 2 : 1),
  s: (n: number) => n.toFixed(2),
  mb: (n: number) => n.toFixed(0),
};

/** Every run of a comparison, in round order: round, subject, the columns, the load average. */
export function runsTable<T>(
  runs: Record<string, { round: number; load: string; result: T }[]>,
  columns: Record<string, (result: T) => string>,
): string {
  const rows = Object.entries(runs)
    .flatMap(([subject, list]) => list.map((run) => ({ subject, ...run })))
    .sort((a, b) => a.round - b.round)
    .map((run) => [
      String(run.round),
      run.subject,
      ...Object.values(columns).map((column) => column(run.result)),
      run.load,
    ]);
  const header = ["round", "subject", ...Object.keys(columns), "load average at start"];
  return `<details><summary>Every run</summary>\n\n${markdownTable(header, rows)}\n\n</details>`;
}

const cpuText = (us: number | undefined) => (us === undefined ? "-" : fmt.int(us));

interface CpuPerRequest {
  cpuUs?: number | undefined;
  databaseCpuUs?: number | undefined;
  loadCpuUs?: number | undefined;
}

/** The CPU per request of every process of a run: the server's, the database's, the load's. */
export const cpuColumns: Record<string, (r: CpuPerRequest) => string> = {
  "server CPU µs/request": (r) => cpuText(r.cpuUs),
  "PostgreSQL CPU µs/request": (r) => cpuText(r.databaseCpuUs),
  "load generator CPU µs/request": (r) => cpuText(r.loadCpuUs),
};

/** The every-run columns of a load run: its rate, p50 and p99 ("-" when not measured), failures. */
export function loadColumns<R extends { p50Ms?: number; p99Ms?: number; failures?: number }>(
  rate: string,
  perSecond: (r: R) => number | undefined,
  extra: Record<string, (r: R) => string> = {},
): Record<string, (r: R) => string> {
  const ms = (n: number | undefined) => (n === undefined ? "-" : fmt.ms(n));
  return {
    [rate]: (r) => fmt.int(perSecond(r) ?? Number.NaN),
    "p50 ms": (r) => ms(r.p50Ms),
    "p99 ms": (r) => ms(r.p99Ms),
    ...extra,
    failed: (r) => String(r.failures ?? 0),
  };
}
