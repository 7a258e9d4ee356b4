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
