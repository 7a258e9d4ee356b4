/**
 * A statement built on first use and then kept, with its values as `sql.placeholder`s. Drizzle
 * builds a query's SQL each time it runs, naming it in `.prepare()` or not; on a hot path that
 * building cost more CPU than anything else in the request (about 40 µs of a book create).
 */
export function preparedOnce<T>(build: () => T): () => T {
  let statement: T | undefined;
  return () => {
    statement ??= build();
    return statement;
  };
}
