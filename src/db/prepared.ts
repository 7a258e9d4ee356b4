import type { SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";

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

const dialect = new PgDialect();

/** The SQL text of a statement without parameters, for textQuery. */
export const renderSql = (query: SQL): string => dialect.sqlToQuery(query).sql;

/**
 * SQL text rendered once per key and then kept, for statements whose variables are literals (a
 * page's LIMIT and OFFSET) or `sql.placeholder`s (`$1`..., given to textQuery when run):
 * rendering with Drizzle cost more CPU than anything else such a request did in this process. At most `max` are kept; a few hundred cover
 * the pages clients ask for again and again, and a client asking for every offset only makes
 * them rendered again.
 */
export function renderedOnce(max = 500): (key: string, build: () => SQL) => string {
  const rendered = new Map<string, string>();
  return (key, build) => {
    let text = rendered.get(key);
    if (text === undefined) {
      if (rendered.size >= max) rendered.clear();
      text = renderSql(build());
      rendered.set(key, text);
    }
    return text;
  };
}
