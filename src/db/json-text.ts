/**
 * Pieces of JSON text written by PostgreSQL, for answers it writes whole (GET /pets, GET /books):
 * this process then sends the text as it is, without decoding the rows and encoding them again.
 * Answers are joined from these pieces with `||` and string_agg rather than made with
 * json_build_object or row_to_json, which write spaces after colons and commas (json_build_object)
 * or cost PostgreSQL about a third more than joined text (pgbench on a page of pets, 4 clients).
 * Values that need no escaping (uuids, integers, enums of plain words) are joined as they are.
 * Every piece must be NOT NULL: a NULL makes the whole joined text NULL.
 */
import { type AnyColumn, type SQL, sql } from "drizzle-orm";

/**
 * JSON text as PostgreSQL sent it: its UTF-8 bytes straight off the connection (postgres.js), or
 * a string (PGlite); what an HTTP answer sends as it is (see TextQuery's `value`).
 */
export type JsonText = string | Uint8Array;

/** A text value as a JSON string: quoted, and escaped as JSON.stringify escapes it. */
export const jsonString = (value: AnyColumn | SQL) => sql`to_json(${value})::text`;

/**
 * A timestamp as a JSON string of its UTC time to the second, `"YYYY-MM-DDTHH:MM:SS"` followed
 * by `zone` inside the quotes ("Z" for RFC 3339). to_json writes timestamps in ISO 8601 whatever
 * DateStyle says; its first 20 characters are the opening quote, the date and the time.
 */
export const utcSecondsJson = (column: AnyColumn | SQL, zone: "" | "Z") =>
  sql`left(to_json(${column} at time zone 'UTC')::text, 20) || ${sql.raw(`'${zone}"'`)}`;

/**
 * A list answer, `{"count":…,"items":[…]}`: `count` an integer expression, `item` the JSON of
 * each row aggregated, in `order`.
 */
export const listAnswerJson = (count: SQL, item: SQL, order: SQL) =>
  sql`'{"count":' || ${count} || ',"items":[' ||
    coalesce(string_agg(${item}, ',' order by ${order}), '') || ']}'`;
