/**
 * The statements petbooks sends for a call, taken from its own repositories: a Drizzle database
 * on a postgres.js stand-in that records what it is asked to run (text, parameters, protocol)
 * and answers nothing. The ceilings replay them through a real postgres.js client, so they run
 * exactly what petbooks runs and cannot drift from it when the repositories change.
 */
import { drizzle } from "drizzle-orm/postgres-js";
import type postgres from "postgres";
import type { Db } from "./petbooks.ts";

export interface Statement {
  text: string;
  /**
   * How postgres.js is asked to run it: `prepare` for a named statement, parsed once per
   * connection; `simple` for the simple query protocol (its default without parameters).
   */
  options: { prepare?: boolean; simple?: boolean };
}

export function recordingDb(): { db: Db; take: () => Statement[] } {
  const sent: Statement[] = [];
  const client = {
    options: { parsers: {}, serializers: {} },
    unsafe(text: string, _params?: unknown[], options: Statement["options"] = {}) {
      sent.push({ text, options });
      const none = () => Promise.resolve([]);
      return Object.assign(none(), { values: none, raw: none });
    },
  };
  const db = drizzle({ client: client as unknown as postgres.Sql }) as unknown as Db;
  return { db, take: () => sent.splice(0) };
}

let queue: Promise<unknown> = Promise.resolve();

/**
 * The one statement `call` sends (its result is ignored: the stand-in answers nothing). Captures
 * take turns, so that concurrent ones cannot take each other's statements.
 */
export function captureOne(
  recorder: ReturnType<typeof recordingDb>,
  call: () => Promise<unknown>,
): Promise<Statement> {
  const captured = queue.then(async () => {
    recorder.take();
    await call().catch(() => {});
    const sent = recorder.take();
    if (sent.length !== 1) throw new Error(`expected one statement, captured ${sent.length}`);
    return sent[0] as Statement;
  });
  queue = captured.catch(() => {});
  return captured;
}

/** Runs a captured statement as petbooks has postgres.js run it, rows as objects. */
export function replayRows(sql: postgres.Sql, statement: Statement, params: unknown[] = []) {
  return sql.unsafe(
    statement.text,
    params as postgres.ParameterOrJSON<never>[],
    statement.options as postgres.UnsafeQueryOptions,
  );
}

/** Runs a captured statement as petbooks has postgres.js run it, rows as arrays. */
export const replay = (sql: postgres.Sql, statement: Statement, params: unknown[] = []) =>
  replayRows(sql, statement, params).values();
