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
