/** Plain-text tables and the verdicts against the issue's targets. */
import { EXPORT_TIMEOUT_S, type ExportRun } from "./export.ts";
import type { LoadResult } from "./wrk.ts";

export const TARGETS = {
  minRpsRatio: 0.75,
  maxP99Ratio: 2,
  maxExportSeconds: 20,
  maxExportRssMb: 200,
  /** "About the same" peak RSS at 1M as at 100k pets. */
  maxRssGrowth: 1.25,
};

export interface VariantResult {
  name: string;
  petbooks: LoadResult;
  ceiling: LoadResult;
}

export interface ExportResult {
  label: string;
  pets: number;
  run: ExportRun;
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}

const yesNo = (ok: boolean) => (ok ? "yes" : "NO");

function ratios(v: VariantResult) {
  return { rps: v.petbooks.rps / v.ceiling.rps, p99: v.petbooks.p99Ms / v.ceiling.p99Ms };
}

function variantVerdict(v: VariantResult): string {
  const failures = v.petbooks.failures + v.ceiling.failures;
  if (failures > 0) return `INVALID (${failures} failed requests)`;
  const r = ratios(v);
  return r.rps >= TARGETS.minRpsRatio && r.p99 <= TARGETS.maxP99Ratio ? "met" : "MISSED";
}

export function listingReport(results: VariantResult[]): string {
  const rows = results.map((v) => {
    const r = ratios(v);
    return [
      v.name,
      v.petbooks.rps.toFixed(0),
      v.petbooks.p50Ms.toFixed(2),
      v.petbooks.p99Ms.toFixed(2),
      v.ceiling.rps.toFixed(0),
      v.ceiling.p50Ms.toFixed(2),
      v.ceiling.p99Ms.toFixed(2),
      r.rps.toFixed(2),
      r.p99.toFixed(2),
      variantVerdict(v),
    ];
  });
  const header = ["variant", "petbooks rps", "p50 ms", "p99 ms", "ceiling rps", "p50 ms"];
  header.push("p99 ms", "rps ratio", "p99 ratio", "target");
  const missed = results.filter((v) => variantVerdict(v) !== "met").map((v) => v.name);
  const summary =
    `targets: rps ratio >= ${TARGETS.minRpsRatio} and p99 <= ${TARGETS.maxP99Ratio}x ceiling ` +
    `for every variant: ${missed.length === 0 ? "met" : `MISSED (${missed.join(", ")})`}`;
  return `${table(header, rows)}\n${summary}`;
}

/** A verdict on a figure of a run that may have been cut short (its figures are then floors). */
function verdict(ok: boolean, killed: boolean): string {
  if (killed) return ok ? "unknown (export killed)" : "NO";
  return yesNo(ok);
}

export function exportReport(results: ExportResult[]): string {
  const rows = results.map((e) => [
    e.label,
    String(e.pets),
    `${e.run.timedOut ? ">" : ""}${e.run.seconds.toFixed(2)}`,
    `${e.run.timedOut ? ">" : ""}${e.run.peakRssMb.toFixed(1)}`,
  ]);
  const lines = [table(["export-pets > /dev/null", "pets", "seconds", "peak RSS MB"], rows)];
  if (results.some((e) => e.run.timedOut)) {
    lines.push(`(">": killed after ${EXPORT_TIMEOUT_S} s, so the figures are lower bounds)`);
  }
  const small = results.find((e) => e.label === "100k");
  const large = results.find((e) => e.label === "1M");
  if (large) {
    const { seconds, peakRssMb, timedOut } = large.run;
    const fast = seconds < TARGETS.maxExportSeconds;
    const lean = peakRssMb < TARGETS.maxExportRssMb;
    lines.push(`target 1M under ${TARGETS.maxExportSeconds} s: ${verdict(fast, timedOut)}`);
    lines.push(`target 1M under ${TARGETS.maxExportRssMb} MB peak RSS: ${verdict(lean, timedOut)}`);
  }
  if (small && large) {
    const growth = large.run.peakRssMb / small.run.peakRssMb;
    const flat = growth <= TARGETS.maxRssGrowth;
    lines.push(
      `target peak RSS about the same at 100k and 1M (1M/100k <= ${TARGETS.maxRssGrowth}): ` +
        `${verdict(flat, small.run.timedOut || large.run.timedOut)} (${growth.toFixed(2)}x)`,
    );
  }
  return lines.join("\n");
}
