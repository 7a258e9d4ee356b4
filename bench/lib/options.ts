/** An integer command-line option, at least `min`; a clear error names the option otherwise. */
export function integerOption(raw: string, name: string, min = 1): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new Error(`--${name} must be an integer >= ${min}`);
  }
  return n;
}
