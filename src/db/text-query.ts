import { type SQL, sql } from "drizzle-orm";
import type { Db } from "./client.ts";
import { rows } from "./rows.ts";

interface DriverClient {
  /**
   * postgres.js: without parameters over the simple query protocol, with them as an unnamed
   * statement, as `execute` sends them; with `prepare` (and `simple: false`) as a named prepared
   * statement, parsed once per connection.
   */
  unsafe?: (
    text: string,
    params?: unknown[],
    options?: PostgresOptions,
  ) => Promise<unknown[]> & { raw(): Promise<(Uint8Array | null)[][]> };
  /** PGlite: a statement's text alone goes over the simple query protocol, as with postgres.js. */
  exec?: (text: string) => Promise<{ rows: unknown[] }[]>;
  query?: (text: string, params?: unknown[]) => Promise<{ rows: unknown[] }>;
}

interface PostgresOptions {
  prepare: boolean;
  simple: boolean;
}

/** How a statement is run. */
export interface RunOptions {
  /**
   * Run again and again (a first page): kept prepared on the database, so PostgreSQL parses and
   * plans it once per connection, not for every request (see POSTGRES_PREPARED_MAX).
   */
  reuse?: boolean;
}

export interface TextQuery {
  <T>(text: string, params?: unknown[], options?: RunOptions): Promise<T[]>;
  /**
   * The one value a statement without parameters answers (its first row's first column), as
   * PostgreSQL sent it: on postgres.js its UTF-8 bytes, never decoded into a string; elsewhere
   * (PGlite, a transaction) its text. For JSON that PostgreSQL writes whole (db/json-text.ts):
   * it goes out as it came, and neither decoding it nor encoding it again costs this process
   * anything. Undefined when there is no row, or the value is NULL.
   */
  value(text: string, options?: RunOptions): Promise<Uint8Array | string | undefined>;
}

/**
 * Statements a textQuery keeps prepared on PostgreSQL, for each of the pool's connections;
 * later ones run unnamed. A page statement prepared holds about 75 KB of the server's memory per
 * connection (measured with pg_backend_memory_contexts), so this bounds it near 4 MB.
 */
export const POSTGRES_PREPARED_MAX = 50;

const PREPARED: PostgresOptions = { prepare: true, simple: false };

/**
 * Runs SQL text rendered once (see renderedOnce), with its parameters if it has any (`$1`...),
 * straight on the driver, rows as objects (so columns need names): what `db.execute` sends,
 * without the query object, tracing span, cache lookup and promise chain Drizzle builds around
 * that one call each time, about a twentieth of the CPU of a GET /pets. A handle that is no
 * driver's own (a transaction's) goes through Drizzle.
 *
 * On PostgreSQL a statement run with `reuse` is a named prepared statement: parsing and planning
 * a page statement is about half of what PostgreSQL spends on it (pgbench on the first page of
 * pets: 6,400 to 7,600 statements per second as text, 14,400 prepared). Its literals (LIMIT,
 * OFFSET) are in the prepared text, so the plan is for them.
 */
export function textQuery(db: Db): TextQuery {
  const client = (db as { $client?: DriverClient }).$client;
  if (typeof client?.unsafe === "function") {
    const unsafe = client.unsafe;
    const prepared = new Set<string>();
    const mayPrepare = (text: string) => {
      if (prepared.has(text)) return true;
      if (prepared.size >= POSTGRES_PREPARED_MAX) return false;
      prepared.add(text);
      return true;
    };
    const protocol = (text: string, options?: RunOptions) =>
      options?.reuse && mayPrepare(text) ? PREPARED : undefined;
    // A plain Array of the rows: postgres.js answers an Array subclass, which JSON.stringify
    // serialises on its slow path (a page of 20 books: 7.5 µs instead of 1.5).
    const run = async <T>(text: string, params: unknown[] = [], options?: RunOptions) =>
      Array.from(await unsafe(text, params, protocol(text, options))) as T[];
    return Object.assign(run, {
      value: async (text: string, options?: RunOptions) =>
        (await unsafe(text, [], protocol(text, options)).raw())[0]?.[0] ?? undefined,
    });
  }
  if (typeof client?.exec === "function" && typeof client.query === "function") {
    return withTextValue(pgliteQuery(client as Required<Pick<DriverClient, "exec" | "query">>));
  }
  return withTextValue(async <T>(text: string, params: unknown[] = []) =>
    rows<T>(await db.execute(withParams(text, params))),
  );
}

/** `run` with `value` read from its rows: the first column of the first row, as text. */
function withTextValue(run: <T>(text: string, params?: unknown[]) => Promise<T[]>): TextQuery {
  return Object.assign(run, {
    value: async (text: string) => {
      const [row] = await run<Record<string, unknown>>(text);
      const value = row === undefined ? undefined : Object.values(row)[0];
      return typeof value === "string" ? value : undefined;
    },
  });
}

/** Statements kept prepared per PGlite database; later ones run as text. */
export const PGLITE_PREPARED_MAX = 500;

/**
 * On PGlite, PostgreSQL runs in this process's own thread: parsing and planning a statement
 * again for every request is this process's CPU, about half of an embedded GET /pets (its page
 * statement: 550 µs as text, 250 to 380 µs as EXECUTE of the same statement prepared). So each
 * statement without parameters is prepared (SQL PREPARE) on first use and then run with EXECUTE,
 * over the simple query protocol's one message. Its literals (LIMIT, OFFSET) are in the prepared
 * text, so the plan is for them. A statement PREPARE does not take runs as text, as do those past
 * PGLITE_PREPARED_MAX (no DEALLOCATE, which could race a caller about to EXECUTE).
 */
function pgliteQuery(pglite: Required<Pick<DriverClient, "exec" | "query">>) {
  const prepared = preparedStatements(pglite);
  const nameOf = (text: string) => {
    let name = prepared.get(text);
    if (name === undefined && prepared.size < PGLITE_PREPARED_MAX) {
      const id = `petbooks_${++preparedNames}`;
      preparedTexts.set(id, text);
      name = pglite.exec(`prepare ${id} as ${text}`).then(
        () => id,
        () => undefined,
      );
      prepared.set(text, name);
    }
    return name;
  };
  return async <T>(text: string, params: unknown[] = []) => {
    if (params.length > 0) return (await pglite.query(text, params)).rows as T[];
    const name = await nameOf(text);
    return ((await pglite.exec(name ? `execute ${name}` : text))[0]?.rows ?? []) as T[];
  };
}

/**
 * Names of the statements pgliteQuery prepares (unique in the process, over every database) to
 * their text, so that a span of `execute petbooks_7` shows the statement it runs.
 */
const preparedTexts = new Map<string, string>();
let preparedNames = 0;

/**
 * What a text pgliteQuery sends stands for: the prepared statement's own text, and whether the
 * text is its PREPARE (`prepare`) or a run of it; undefined for any other text.
 */
export function preparedStatement(text: string): { prepare: boolean; text: string } | undefined {
  const match = /^(prepare|execute) (petbooks_\d+)(?: as |$)/.exec(text);
  const statement = match ? preparedTexts.get(match[2] as string) : undefined;
  return match && statement !== undefined
    ? { prepare: match[1] === "prepare", text: statement }
    : undefined;
}

/** Per PGlite database (one session, which every repository shares): text to prepared name. */
const preparedByDatabase = new WeakMap<object, Map<string, Promise<string | undefined>>>();

function preparedStatements(pglite: object) {
  let prepared = preparedByDatabase.get(pglite);
  if (prepared === undefined) {
    prepared = new Map();
    preparedByDatabase.set(pglite, prepared);
  }
  return prepared;
}

/** Rendered text back as Drizzle SQL, `$n` bound to `params[n - 1]` (none in our literals). */
function withParams(text: string, params: unknown[]): SQL {
  if (params.length === 0) return sql.raw(text);
  const parts = text.split(/\$(\d+)/);
  return sql.join(
    parts.map((part, i) => (i % 2 === 0 ? sql.raw(part) : sql`${params[Number(part) - 1]}`)),
  );
}
