/**
 * Timestamps as the API shows them: UTC text to the second, written by PostgreSQL's `to_char` so
 * that no row needs a Date made and formatted again in this process.
 */
import { type AnyColumn, type SQL, sql } from "drizzle-orm";

// The formats go into the statement as literals, never as parameters: a statement's text (and
// the ceilings in bench/, which replay it) stays the same, and a prepared plan needs no value.
const utcText = (format: string) => {
  const literal = sql.raw(`'${format}'`);
  return (column: AnyColumn | SQL) =>
    sql<string>`to_char(${column} at time zone 'UTC', ${literal})`;
};

/** `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339), as books and users show their times. */
export const rfc3339Text = utcText('YYYY-MM-DD"T"HH24:MI:SS"Z"');

/** `YYYY-MM-DDTHH:MM:SS`, UTC without the zone letter, as pets show `created_at`. */
export const utcSecondsText = utcText('YYYY-MM-DD"T"HH24:MI:SS');
