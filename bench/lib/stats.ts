/** Medians and spreads: ratios are reported as the median of rounds with their min-max. */
export function median(values: number[]): number {
  if (values.length === 0) throw new Error("median of nothing");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function spread(values: number[], format: (n: number) => string): string {
  return `${format(Math.min(...values))}-${format(Math.max(...values))}`;
}

/** Per-round ratios a[i] / b[i] of paired runs: the median and the range. */
export interface Ratio {
  median: number;
  min: number;
  max: number;
  rounds: number[];
}

export function pairedRatio(a: number[], b: number[]): Ratio {
  if (a.length !== b.length || a.length === 0) throw new Error("ratio of unpaired runs");
  const rounds = a.map((x, i) => x / (b[i] as number));
  return { median: median(rounds), min: Math.min(...rounds), max: Math.max(...rounds), rounds };
}

/**
 * "0.93 (0.88-0.97)": the median, then the min-max over rounds. Judged against `target`, a
 * median that rounds to the target without being it gets a digit more ("0.897", not a "0.90"
 * that missed 0.9).
 */
export function formatRatio(r: Ratio, target?: number, digits = 2): string {
  const rounded = r.median.toFixed(digits);
  const ambiguous =
    target !== undefined && r.median !== target && rounded === target.toFixed(digits);
  const median = ambiguous ? r.median.toFixed(digits + 1) : rounded;
  return `${median} (${r.min.toFixed(digits)}-${r.max.toFixed(digits)})`;
}

/** The p-th percentile (0..100) of ascending `sorted`, nearest rank. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? Number.NaN;
}

/** The p-th percentile (0..100) of ascending `sorted`, the upper of two middles (index p% of n). */
export const upperPercentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
