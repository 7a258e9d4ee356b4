/** The database handle: postgres.js against PostgreSQL, or PGlite embedded in the process. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PGlite, types } from "@electric-sql/pglite";
import initdbWasmPath from "@electric-sql/pglite/initdb.wasm" with { type: "file" };
import pgliteDataPath from "@electric-sql/pglite/pglite.data" with { type: "file" };
import pgliteWasmPath from "@electric-sql/pglite/pglite.wasm" with { type: "file" };
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import type { Logger } from "../logger.ts";
import { tracePglite, tracePostgres } from "../observability/db-tracing.ts";
import type { Tracing } from "../observability/tracing.ts";
import { redactUrl } from "../redact.ts";
import { isTransient, retryable } from "../retry.ts";
import { overriding } from "./client-proxy.ts";
import { lockDataDir } from "./data-dir-lock.ts";
import { bundledSnapshot } from "./embedded-snapshot.ts";
import { permanentRefusal, withDatabaseTimeout } from "./errors.ts";
import { collectingGarbage } from "./pglite-garbage.ts";
/**
 * Drizzle without its relational query API (`db.query`, unused here): given a schema it builds a
 * query builder per table for every transaction, which cost about 8% of a write's CPU.
 */
export type Db = PgDatabase<PgQueryResultHKT>;

export interface Database {
  db: Db;
  kind: "postgres" | "embedded";
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  databaseUrl?: string | undefined;
  /** Where the embedded database keeps its files; omitted means in memory (tests). */
  dataDir?: string | undefined;
  poolSize?: number;
  /** Attempts to reach PostgreSQL at startup before giving up. */
  connectAttempts?: number;
  /**
   * Longest wait for a PostgreSQL connection and for one statement (DATABASE_TIMEOUT_MS), so a
   * request fails fast with 503 while the database is unreachable instead of hanging.
   */
  timeoutMs?: number;
  /**
   * What a new embedded database starts from: a migrated data directory (see
   * embedded-snapshot.ts), or `null` for initdb. Omitted: the snapshot built into the executable.
   */
  snapshot?: Blob | null;
  /** A client span per statement (observability/db-tracing.ts); none: tracing is off. */
  tracing?: Tracing | undefined;
}

export async function openDatabase(options: DatabaseOptions, logger: Logger): Promise<Database> {
  return options.databaseUrl
    ? openPostgres(options.databaseUrl, options, logger)
    : openEmbedded(options, logger);
}

export const DEFAULT_DATABASE_TIMEOUT_MS = 5_000;

/** The startup check that PostgreSQL answers: a ping, tried again while it is out of reach. */
export class PostgresConnection {
  constructor(
    private readonly ping: () => Promise<void>,
    readonly logger: Logger,
    readonly attempts = 5,
    readonly sleep: (ms: number) => Promise<void> = Bun.sleep,
  ) {}

  // A wrong password or a missing database (permanentRefusal) is not transient: it fails at once.
  @retryable((c: PostgresConnection) => ({
    name: "connect to PostgreSQL",
    times: c.attempts,
    delayMs: 500,
    exponential: true,
    retryOn: isTransient,
    sleep: c.sleep,
  }))
  async connect(): Promise<void> {
    await this.ping();
  }
}

async function openPostgres(url: string, options: DatabaseOptions, logger: Logger) {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DATABASE_TIMEOUT_MS;
  const client = postgres(url, {
    max: options.poolSize ?? 10,
    connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
    // postgres.js waits up to 20 s between attempts after repeated failures: once PostgreSQL is
    // back, requests would still fail for that long. Attempts follow requests, and requests
    // back off themselves (503 with Retry-After), so no wait is longer than the timeout.
    backoff: (retries: number) =>
      Math.min(defaultBackoffSeconds(retries), timeoutMs / 1000) * (0.5 + Math.random() / 2),
    onnotice: () => {},
    connection: { application_name: "petbooks", statement_timeout: timeoutMs },
    // A connection awaiting an answer that hears nothing for longer than statement_timeout
    // allows is given up (its queries fail: 503) once a fresh connection cannot reach the server
    // either; a long statement on a server that answers is left alone (patches/, checkSilence).
    answer_timeout: silentAfterMs(timeoutMs) / 1000,
    onsilence: serverSilence(url, timeoutMs),
  });
  boundWaitsForConnections(client, timeoutMs);
  const traced = tracePostgres(client, options.tracing);
  const db = drizzlePostgres({ client: traced }) as unknown as Db;
  // Bounded on our side too: a connection whose peer vanished without a word (no FIN, no RST)
  // waits for TCP, and statement_timeout runs on a server that never got the query.
  const ping = async () => {
    await withDatabaseTimeout(traced.unsafe("select 1"), timeoutMs, "ping");
  };
  try {
    await new PostgresConnection(ping, logger, options.connectAttempts).connect();
  } catch (err) {
    await client.end({ timeout: 1 });
    const where = redactUrl(url);
    const refusal = permanentRefusal(err);
    const message = (err as Error).message;
    throw new Error(
      refusal
        ? `PostgreSQL at ${where} refused the connection: ${refusal}: ${message}`
        : `cannot reach PostgreSQL at ${where}: ${message}`,
    );
  }
  return {
    db,
    kind: "postgres" as const,
    ping,
    close: () => client.end({ timeout: 5 }),
  };
}

/**
 * How long a connection awaiting an answer may hear nothing before the server is suspected: a
 * server that answers ends any statement at statement_timeout (DATABASE_TIMEOUT_MS), and its
 * answer takes at most a moment more to arrive.
 */
export const silentAfterMs = (timeoutMs: number) => timeoutMs + Math.min(timeoutMs, 1_000);

/**
 * postgres.js's `onsilence`: whether a connection that has heard nothing for silentAfterMs may be
 * given up, asked of a fresh connection of its own: when that cannot run `select 1` within
 * `timeoutMs` either, the server or the network has stopped answering. While it still answers,
 * the silent connection runs a statement without a time limit (a migration, an export) and
 * waits on. Silent connections at the same moment share one check.
 */
export function serverSilence(
  url: string,
  timeoutMs: number,
  check: () => Promise<void> = () => answersOnFreshConnection(url, timeoutMs),
): () => Promise<boolean> {
  let checking: Promise<boolean> | undefined;
  return () => {
    checking ??= check()
      .then(
        () => false,
        () => true,
      )
      .finally(() => {
        checking = undefined;
      });
    return checking;
  };
}

async function answersOnFreshConnection(url: string, timeoutMs: number): Promise<void> {
  const probe = postgres(url, {
    max: 1,
    connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
    onnotice: () => {},
    connection: { application_name: "petbooks" },
  });
  try {
    await withDatabaseTimeout(probe.unsafe("select 1"), timeoutMs, "silence check");
  } finally {
    await probe.end({ timeout: 0 });
  }
}

/** postgres.js's own backoff before its jitter: 3^retries / 100 s, at most 20 s. */
const defaultBackoffSeconds = (retries: number) => Math.min(3 ** retries / 100, 20);

/** What of postgres.js 3.4's Query this relies on: its pool's hand-off, and `state`. */
interface PendingQuery extends postgres.PendingQuery<postgres.Row[]> {
  /** Hands the query to a connection, or queues it while none can take it. */
  handler: QueryHandoff;
  /** Set once the query is handed to a connection's socket. */
  state: unknown;
}
type QueryHandoff = ((query: PendingQuery) => void) & { debug?: unknown };

/**
 * postgres.js queues a query while no connection is free and keeps it however long connecting
 * takes: during an outage, requests would hang until PostgreSQL came back. A query still
 * unsent after `timeoutMs` is cancelled instead, which postgres.js guarantees never sends it
 * (it fails with 57014, an unavailable database: 503). A query already sent is left to
 * statement_timeout: a client-side cancel could hit the next query on the same backend.
 *
 * Every query Drizzle runs, transactions' `begin` included, goes through `unsafe`; the ones
 * inside a transaction run on its connection, which they do not wait for. Only a query the pool
 * could not send at once gets a timer: almost every query goes straight to a connection, and a
 * timer and a promise for each showed in profiles of GET /pets (about 1.5% of the samples).
 */
function boundWaitsForConnections(client: postgres.Sql, timeoutMs: number): void {
  const bounded = new WeakMap<QueryHandoff, QueryHandoff>();
  const boundedHandoff = (handoff: QueryHandoff): QueryHandoff => {
    let wrapped = bounded.get(handoff);
    if (!wrapped) {
      wrapped = (query: PendingQuery) => {
        handoff(query);
        if (!query.state) cancelUnlessSentWithin(query, timeoutMs);
      };
      // postgres.js reads its handler's `debug` for a query's origin.
      wrapped.debug = handoff.debug;
      bounded.set(handoff, wrapped);
    }
    return wrapped;
  };
  const unsafe = client.unsafe;
  client.unsafe = ((...args: Parameters<typeof unsafe>) => {
    const query = unsafe(...args) as unknown as PendingQuery;
    query.handler = boundedHandoff(query.handler);
    return query;
  }) as typeof unsafe;
}

function cancelUnlessSentWithin(query: PendingQuery, timeoutMs: number): void {
  const timer = setTimeout(() => {
    if (query.state) return;
    Promise.resolve(query.cancel()).catch(() => {});
  }, timeoutMs);
  const settled = () => clearTimeout(timer);
  Promise.prototype.then.call(query, settled, settled);
}

let wasmModules: Promise<[WebAssembly.Module, WebAssembly.Module]> | undefined;

/** Compiling PGlite's WebAssembly takes most of its startup: do it once per process. */
function compiledWasm() {
  wasmModules ??= Promise.all([
    Bun.file(pgliteWasmPath)
      .arrayBuffer()
      .then((bytes) => WebAssembly.compile(bytes)),
    Bun.file(initdbWasmPath)
      .arrayBuffer()
      .then((bytes) => WebAssembly.compile(bytes)),
  ]);
  return wasmModules;
}

/**
 * The type parsers Drizzle hands PGlite with every query (drizzle-orm/pglite/session.js: dates,
 * timestamps, intervals and their arrays stay text). PGlite merges a query's parsers into a new
 * copy of its whole parser table, query after query (an earlier measurement: embedded GET /pets
 * served 1.21x the requests without that copy). Given to PGlite once, at creation, they need not
 * travel with each query; see withoutQueryParsers.
 */
const DRIZZLE_PGLITE_PARSERS = Object.fromEntries(
  [
    types.TIMESTAMP,
    types.TIMESTAMPTZ,
    types.INTERVAL,
    types.DATE,
    1231,
    1115,
    1185,
    1187,
    1182,
  ].map((oid) => [oid, (value: string) => value]),
);

/**
 * The client as Drizzle gets it: `query` without the per-query parsers (PGlite already has them,
 * DRIZZLE_PGLITE_PARSERS), everything else the client's own.
 */
function withoutQueryParsers(client: PGlite): PGlite {
  const query: PGlite["query"] = (text, params, options) => {
    if (!options?.parsers) return client.query(text, params, options);
    const { parsers: _, ...rest } = options;
    return client.query(text, params, rest);
  };
  return overriding(client, { query });
}

async function openEmbedded(options: DatabaseOptions, logger: Logger) {
  const { dataDir } = options;
  const lock = dataDir ? lockDataDir(dataDir) : undefined;
  try {
    const pgdata = dataDir ? join(dataDir, "pgdata") : undefined;
    const snapshot = options.snapshot === undefined ? bundledSnapshot() : options.snapshot;
    const isNew = !pgdata || !existsSync(join(pgdata, "PG_VERSION"));
    if (isNew && pgdata) {
      // Said before the wait: without a snapshot this takes seconds, more on a busy machine.
      logger.info("creating the embedded database", {
        data_dir: pgdata,
        from: snapshot ? "snapshot" : "initdb",
      });
    }
    const [pgliteWasmModule, initdbWasmModule] = await compiledWasm();
    const client = await PGlite.create(pgdata, {
      pgliteWasmModule,
      initdbWasmModule,
      fsBundle: Bun.file(pgliteDataPath),
      parsers: DRIZZLE_PGLITE_PARSERS,
      ...(isNew && snapshot ? { loadDataDir: snapshot } : {}),
    });
    const db = drizzlePglite({
      client: tracePglite(collectingGarbage(withoutQueryParsers(client)), options.tracing),
    }) as unknown as Db;
    logger.debug("embedded database opened", { data_dir: dataDir ?? "memory" });
    return {
      db,
      kind: "embedded" as const,
      // PGlite runs one query at a time: behind a long one, a ping waits. Readiness says so.
      ping: async () => {
        await withDatabaseTimeout(
          db.execute(sql`select 1`),
          options.timeoutMs ?? DEFAULT_DATABASE_TIMEOUT_MS,
          "ping",
        );
      },
      close: async () => {
        try {
          await client.close();
        } finally {
          lock?.release();
        }
      },
    };
  } catch (err) {
    lock?.release();
    throw err;
  }
}
