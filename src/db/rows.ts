/** postgres.js answers `execute` with an array of rows, PGlite with `{ rows }`: one shape for both. */
export function rows<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return (result as { rows: T[] }).rows;
}
