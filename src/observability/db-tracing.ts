/**
 * A client span per database statement, as the semantic conventions for database spans describe
 * them, child of the span running (a request's, an RPC's, a consumed event's), transactions
 * included. Installed only with tracing on, around the driver client Drizzle is given
 * (openDatabase); off, the client is the driver's own and nothing here runs per statement.
 */
import type { PGlite, Transaction } from "@electric-sql/pglite";
import {
  type Attributes,
  context,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import {
  ATTR_DB_COLLECTION_NAME,
  ATTR_DB_NAMESPACE,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_QUERY_SUMMARY,
  ATTR_DB_QUERY_TEXT,
  ATTR_DB_RESPONSE_STATUS_CODE,
  ATTR_DB_SYSTEM_NAME,
  ATTR_ERROR_TYPE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  DB_SYSTEM_NAME_VALUE_POSTGRESQL,
} from "@opentelemetry/semantic-conventions";
import type postgres from "postgres";
import { overriding } from "../db/client-proxy.ts";
import { preparedStatement } from "../db/text-query.ts";
import type { Tracing } from "./tracing.ts";

/** What a statement's span is named and says of it, worked out once per text. */
interface Statement {
  summary: string;
  attributes: Attributes;
}

const IDENTIFIER = String.raw`("[^"]+"|[a-z_][\w$]*)`;
/** Where the one table a statement is about can be read without parsing it. */
const TARGETS: Record<string, RegExp> = {
  SELECT: new RegExp(String.raw`\sfrom\s+${IDENTIFIER}`, "i"),
  DELETE: new RegExp(String.raw`^\s*delete\s+from\s+${IDENTIFIER}`, "i"),
  INSERT: new RegExp(String.raw`^\s*insert\s+into\s+${IDENTIFIER}`, "i"),
  UPDATE: new RegExp(String.raw`^\s*update\s+${IDENTIFIER}`, "i"),
};
/** Only these name a table on their own; a SELECT's first FROM may be one of several (joins). */
const SINGLE_TABLE = new Set(["DELETE", "INSERT", "UPDATE"]);

const statements = new Map<string, Statement>();

/**
 * `SELECT pets`, `INSERT books`, `BEGIN`… from the statement's first word (the operation) and its
 * table where that is plain. Drizzle's texts repeat, so this runs once per text; a `WITH` or
 * anything else unusual keeps only `postgresql` as its name rather than a guess.
 */
function describe(text: string): Statement {
  let statement = statements.get(text);
  if (statement) return statement;
  const keyword = /^\s*([a-z]+)/i.exec(text)?.[1]?.toUpperCase();
  const operation = keyword && keyword !== "WITH" ? keyword : undefined;
  const table = operation && TARGETS[operation]?.exec(text)?.[1]?.replaceAll('"', "");
  const summary = operation ? (table ? `${operation} ${table}` : operation) : "postgresql";
  statement = {
    summary,
    attributes: {
      [ATTR_DB_QUERY_TEXT]: text,
      ...(operation && { [ATTR_DB_OPERATION_NAME]: operation, [ATTR_DB_QUERY_SUMMARY]: summary }),
      ...(table && SINGLE_TABLE.has(operation ?? "") && { [ATTR_DB_COLLECTION_NAME]: table }),
    },
  };
  // Bounded: texts rendered with literals (a page's LIMIT) could otherwise grow it for ever.
  if (statements.size >= 1000) statements.clear();
  statements.set(text, statement);
  return statement;
}

/**
 * A span for `text`, or none outside a recorded span: the relay's polls and the outbox gauge run
 * outside any request, and a trace of their own each second would bury the requests' traces.
 */
function startStatement(tracing: Tracing, base: Attributes, text: unknown): Span | undefined {
  if (typeof text !== "string" || !trace.getSpan(context.active())?.isRecording()) return undefined;
  const { summary, attributes } = describe(text);
  return tracing.tracer.startSpan(summary, {
    kind: SpanKind.CLIENT,
    attributes: { ...base, ...attributes },
  });
}

/**
 * Ends `span` as failed. The error's code only (a SQLSTATE, or postgres.js's own such as
 * `CONNECTION_CLOSED`), else its class: its message may quote a parameter's value.
 */
function fail(span: Span, err: unknown): void {
  const code = (err as { code?: unknown } | undefined)?.code;
  const type = typeof code === "string" && /^[A-Z0-9_]{1,64}$/.test(code) ? code : undefined;
  span.setAttribute(ATTR_ERROR_TYPE, type ?? (err as Error | undefined)?.name ?? "_OTHER");
  if (type && /^[0-9A-Z]{5}$/.test(type)) span.setAttribute(ATTR_DB_RESPONSE_STATUS_CODE, type);
  span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/**
 * What `send` returns, its span ended when that settles, by the promise's own `then` (a
 * postgres.js query's would start it before Drizzle has set it up).
 */
function observed<T extends PromiseLike<unknown>>(span: Span | undefined, send: () => T): T {
  if (!span) return send();
  let statement: T;
  try {
    statement = send();
  } catch (err) {
    fail(span, err);
    throw err;
  }
  Promise.prototype.then.call(
    statement,
    () => span.end(),
    (err: unknown) => fail(span, err),
  );
  return statement;
}

type Fn = (...args: unknown[]) => unknown;

/** overriding, and the proxy remembered as one of ours (isTracedClient). */
function traceOverriding<T extends object>(client: T, methods: Record<string, Fn>): T {
  const proxy = overriding(client, methods);
  traced.add(proxy);
  return proxy;
}

const traced = new WeakSet<object>();

/** Whether `client` is one of ours (tests: with tracing off, Drizzle gets the driver's own). */
export const isTracedClient = (client: unknown): boolean =>
  typeof client === "object" || typeof client === "function" ? traced.has(client as object) : false;

/** `fn` of a transaction, run in the caller's context with its client traced as well. */
function inCallersContext<C>(fn: Fn, wrap: (client: C) => C): (client: C) => unknown {
  const caller = context.active();
  return (client) => context.with(caller, () => fn(wrap(client)));
}

/** The last argument is the callback (`begin(fn)`, `begin(options, fn)`, `savepoint(name, fn)`). */
function withCallback<C>(args: unknown[], wrap: (client: C) => C): unknown[] {
  const fn = args.at(-1);
  return typeof fn === "function" ? [...args.slice(0, -1), inCallersContext(fn as Fn, wrap)] : args;
}

type PostgresClient = postgres.Sql | postgres.TransactionSql;

/**
 * postgres.js as Drizzle uses it (drizzle-orm/postgres-js/session.js): every statement is an
 * `unsafe(text, params)` (then `.values()` or awaited), transactions are `begin` and `savepoint`
 * whose callbacks get a client of their own, traced the same way. Its `begin`, `commit` and
 * `rollback` go past `unsafe` (postgres.js sends them itself) and have no spans.
 */
export function tracePostgres<T extends postgres.Sql>(client: T, tracing: Tracing | undefined): T {
  if (!tracing) return client;
  const base: Attributes = {
    [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
    [ATTR_DB_NAMESPACE]: client.options.database,
    [ATTR_SERVER_ADDRESS]: client.options.host[0],
    [ATTR_SERVER_PORT]: client.options.port[0],
  };
  const wrap = <C extends PostgresClient>(sql: C): C => {
    const raw = sql as unknown as Record<string, Fn>;
    return traceOverriding(sql, {
      unsafe: (...args) => {
        const span = startStatement(tracing, base, args[0]);
        return observed(span, () => raw.unsafe?.(...args) as PromiseLike<unknown>);
      },
      ...("begin" in sql && {
        begin: (...args) => raw.begin?.(...withCallback<PostgresClient>(args, wrap)),
      }),
      savepoint: (...args) => raw.savepoint?.(...withCallback<PostgresClient>(args, wrap)),
    });
  };
  return wrap(client);
}

type PgliteClient = PGlite | Transaction;

/**
 * PGlite as Drizzle uses it (drizzle-orm/pglite/session.js): `query(text, params)`, `exec(text)`
 * (textQuery), and `transaction`, whose callback gets a client traced the same way.
 */
export function tracePglite<T extends PGlite>(client: T, tracing: Tracing | undefined): T {
  if (!tracing) return client;
  const base: Attributes = { [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL };
  const wrap = <C extends PgliteClient>(db: C): C => {
    const raw = db as unknown as Record<string, Fn>;
    const statement =
      (name: "query" | "exec") =>
      (...args: unknown[]) => {
        // textQuery's prepared statements (db/text-query.ts): the PREPARE of a statement's first
        // run gets no span of its own, and each EXECUTE the statement's text.
        const prepared = typeof args[0] === "string" ? preparedStatement(args[0]) : undefined;
        if (prepared?.prepare) return raw[name]?.call(db, ...args);
        const span = startStatement(tracing, base, prepared?.text ?? args[0]);
        return observed(span, () => raw[name]?.call(db, ...args) as Promise<unknown>);
      };
    return traceOverriding(db, {
      query: statement("query"),
      exec: statement("exec"),
      ...("transaction" in db && {
        transaction: (...args) =>
          raw.transaction?.call(db, ...withCallback<PgliteClient>(args, wrap)),
      }),
    });
  };
  return wrap(client);
}
