/** What a benchmark works in: a private directory, the binary under test, its database, cleanup. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type postgres from "postgres";
import type { Cleanup } from "./cleanup.ts";
import { connect, dropDatabase, recreateDatabase } from "./database.ts";
import { loadAverage } from "./machine.ts";
import { buildPetbooks, childEnv, runChecked } from "./processes.ts";
import type { Report } from "./report.ts";

export interface BenchOptions {
  /** Interleaved rounds per comparison. */
  rounds: number;
  /** Seconds of each measured load run, after `warmup` seconds of the same load. */
  seconds: number;
  warmup: number;
  /** DATABASE_POOL_SIZE of petbooks and of every ceiling. */
  pool: number;
  /** pgbench's clients for PostgreSQL alone: each tried before the rounds, the fastest run in them. */
  pgbenchClients: number[];
  /** Leave out the export over 1,000,000 pets (the slowest part). */
  skip1m: boolean;
}

export interface Workspace {
  /** A private directory (DATA_DIR, scripts, logs), removed at the end. */
  dir: string;
  /** The petbooks binary under test, built from the current sources into `dir`. */
  binary: string;
  /** The bench's PostgreSQL database, migrated ("" when it has none). */
  databaseUrl: string;
  /** DATABASE_POOL_SIZE of the servers started. */
  pool: number;
  cleanup: Cleanup;
}

/** What every scenario of the report gets: a workspace, options and the report. */
export interface Context extends Workspace {
  options: BenchOptions;
  report: Report;
}

/**
 * --pool: DATABASE_POOL_SIZE of the servers a bench starts. 3 served more than 10 on this 2-core
 * machine (docs/operations.md#database-connections), so the report and the profiles use it.
 */
export const POOL_OPTION = {
  int: 3,
  help: "DATABASE_POOL_SIZE of petbooks and the ceilings (docs/operations.md#database-connections)",
} as const;

export const API_KEY = "petbooks-bench-api-key";
/** Signs the bench user's tokens and, in `grpc`, the page tokens (ceilings use it the same way). */
export const JWT_SECRET = "petbooks-bench-jwt-secret-0123456789abcdef";

export const progress = (message: string) => console.error(`· ${message} (load ${loadAverage()})`);

/**
 * A private directory and petbooks built from the current sources into it (or `binary`); with
 * `database`, that PostgreSQL database created fresh and migrated, and a connection to it. All
 * undone by `cleanup`.
 */
export async function openWorkspace(
  cleanup: Cleanup,
  setup: { name: string; database?: string; pool?: number; binary?: string },
): Promise<Workspace & { sql: postgres.Sql }> {
  const dir = mkdtempSync(join(tmpdir(), `petbooks-${setup.name}-`));
  cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
  if (!setup.binary) progress("building petbooks from the current sources (scripts/build.ts)");
  const binary = setup.binary ?? (await buildPetbooks(dir));
  const ws = { dir, binary, databaseUrl: "", pool: setup.pool ?? 10, cleanup };
  if (!setup.database) return { ...ws, sql: undefined as unknown as postgres.Sql };
  const { database } = setup;
  const databaseUrl = await recreateDatabase(database);
  cleanup.defer(() => dropDatabase(database));
  await runChecked([binary, "migrate"], childEnv({ DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" }));
  const sql = connect(databaseUrl);
  cleanup.defer(() => sql.end({ timeout: 5 }));
  return { ...ws, databaseUrl, sql };
}
