import { type SQL, sql } from "drizzle-orm";

/**
 * A non-negative integer inlined into SQL. LIMIT and OFFSET go in as literals so PostgreSQL plans
 * for the actual numbers and the query has no parameters (one round trip, no re-planning). Only
 * ever called with integers a request schema already bounded.
 */
export function integerLiteral(n: number): SQL {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a safe integer: ${n}`);
  return sql.raw(String(n));
}

/**
 * A string inlined into SQL as an escape-string literal, for a statement that takes no
 * parameters (a COPY): quotes and backslashes escaped, which holds whatever
 * standard_conforming_strings is set to.
 */
export function textLiteral(text: string): SQL {
  if (text.includes("\0")) throw new RangeError("SQL text cannot hold a NUL character");
  return sql.raw(`E'${text.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`);
}
