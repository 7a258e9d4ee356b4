/**
 * A fresh, migrated database per test file: a new PostgreSQL database when DATABASE_URL is set
 * (created next to the one it names, dropped afterwards), an in-memory PGlite otherwise.
 */
import postgres from "postgres";
import { type Database, openDatabase } from "../db/client.ts";
import { createSnapshot } from "../db/create-snapshot.ts";
import { migrate } from "../db/migrate.ts";
import { silentLogger } from "../logger.ts";

let snapshot: Promise<Blob> | undefined;

/**
 * The migrated embedded database, made once per test process (`bun test` runs every file in
 * one): each test database then starts from it instead of running initdb and every migration.
 */
export function testSnapshot(): Promise<Blob> {
  snapshot ??= createSnapshot();
  return snapshot;
}

export interface TestDatabase extends Database {
  /** The URL of the created database, when on PostgreSQL. */
  url: string | undefined;
}

const DATABASE_PREFIX = /^[a-z][a-z0-9_]{0,39}$/;

/**
 * A new database's name: PETBOOKS_TEST_DATABASE_PREFIX, or `petbooks_test`, and a unique suffix.
 * CI gives its own prefix, so that a run stopped before the tests dropped their databases can
 * drop them itself, and only its own.
 */
function freshDatabaseName(): string {
  const prefix = process.env.PETBOOKS_TEST_DATABASE_PREFIX ?? "petbooks_test";
  if (!DATABASE_PREFIX.test(prefix)) {
    throw new Error(
      `PETBOOKS_TEST_DATABASE_PREFIX must match ${DATABASE_PREFIX} (got "${prefix}")`,
    );
  }
  return `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const baseUrl = process.env.DATABASE_URL;
  if (!baseUrl) {
    const database = await openDatabase({ snapshot: await testSnapshot() }, silentLogger);
    await migrate(database.db, silentLogger);
    return { ...database, url: undefined };
  }
  const name = freshDatabaseName();
  const admin = postgres(baseUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  const url = withDatabase(baseUrl, name);
  const database = await openDatabase({ databaseUrl: url, poolSize: 5 }, silentLogger);
  await migrate(database.db, silentLogger);
  return {
    ...database,
    url,
    async close() {
      await database.close();
      const cleanup = postgres(baseUrl, { max: 1, onnotice: () => {} });
      await cleanup.unsafe(`drop database if exists "${name}" with (force)`);
      await cleanup.end();
    },
  };
}

/** An empty database for tests that run migrations themselves (PostgreSQL only). */
export async function createEmptyPostgresDatabase(): Promise<{
  url: string;
  drop(): Promise<void>;
}> {
  const baseUrl = process.env.DATABASE_URL;
  if (!baseUrl) throw new Error("needs DATABASE_URL");
  const name = freshDatabaseName();
  await withPostgres(baseUrl, (admin) => admin.unsafe(`create database "${name}"`));
  return {
    url: withDatabase(baseUrl, name),
    async drop() {
      await withPostgres(baseUrl, (admin) =>
        admin.unsafe(`drop database if exists "${name}" with (force)`),
      );
    },
  };
}

/** Runs `work` on a one-connection client of `url`, closed afterwards whatever happens. */
export async function withPostgres<T>(
  url: string,
  work: (sql: postgres.Sql) => Promise<T>,
): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}
