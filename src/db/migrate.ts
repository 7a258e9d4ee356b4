/** Applies the embedded drizzle-kit migrations, one process at a time. */
import { sql } from "drizzle-orm";
import type { Logger } from "../logger.ts";
import type { Db } from "./client.ts";
import { embeddedMigrations } from "./migrations.macro.ts" with { type: "macro" };
import type { EmbeddedMigration } from "./migrations.macro.ts";
import { rows } from "./rows.ts";

/** Arbitrary constant shared by every petbooks process that migrates this database. */
const MIGRATION_LOCK_KEY = 7_351_029_113;

export const MIGRATIONS: EmbeddedMigration[] = embeddedMigrations();

/**
 * Runs every pending migration in one transaction behind a transaction-scoped advisory lock, so
 * instances starting together wait for each other instead of racing on DDL. The bookkeeping
 * table is drizzle-kit's own, so `drizzle-kit migrate` and petbooks agree on what was applied.
 */
export async function migrate(
  db: Db,
  logger: Logger,
  migrations: EmbeddedMigration[] = MIGRATIONS,
): Promise<string[]> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    // A migration may rewrite a large table: DATABASE_TIMEOUT_MS is for requests, not for this.
    await tx.execute(sql`set local statement_timeout = 0`);
    await tx.execute(sql`create schema if not exists drizzle`);
    await tx.execute(sql`create table if not exists drizzle.__drizzle_migrations (
      id serial primary key, hash text not null, created_at bigint)`);
    const done = rows<{ created_at: string | number }>(
      await tx.execute(sql`select created_at from drizzle.__drizzle_migrations`),
    );
    const applied = new Set(done.map((r) => Number(r.created_at)));
    const pending = migrations.filter((m) => !applied.has(m.createdAt));
    if (pending.length > 0) {
      logger.info("migrating the database", { pending: pending.map((m) => m.tag) });
    }
    for (const migration of pending) {
      for (const statement of migration.statements) await tx.execute(sql.raw(statement));
      await tx.execute(sql`insert into drizzle.__drizzle_migrations (hash, created_at)
        values (${migration.hash}, ${migration.createdAt})`);
      logger.info("migration applied", { migration: migration.tag });
    }
    return pending.map((m) => m.tag);
  });
}
