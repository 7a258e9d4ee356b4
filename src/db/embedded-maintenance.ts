/**
 * VACUUM and ANALYZE for the embedded database, which nothing else would run: PGlite is
 * PostgreSQL without its background workers, autovacuum among them. Without them the planner has
 * no statistics, deleted rows stay, and no page is ever marked all-visible, so an index-only scan
 * (a page's photos, a later page's offset) reads the table row by row all the same. Measured on
 * 100,000 pets seeded and never vacuumed: the statement of the page at offset 50,000 took 32 to
 * 47 ms, and 6 after VACUUM ANALYZE.
 *
 * As autovacuum does, it runs once enough has changed: when the write-ahead log has grown by a
 * share of the database's size since the last run (at least `minWalBytes`), checked every
 * `intervalMs`; and once soon after start (`firstRunAfterMs`, so that the start itself is not held
 * up), for what changed before: a seed, or a process that never got this far. One table at a
 * time: PGlite runs one statement at a time, so requests take their turns between tables. A
 * database vacuumed before costs little again (100,000 pets: 18 ms to vacuum, about 300 to
 * analyze every table).
 */
import { sql } from "drizzle-orm";
import { type Clock, repeat, systemClock } from "../events/clock.ts";
import type { Logger } from "../logger.ts";
import type { Database, Db } from "./client.ts";
import { rows } from "./rows.ts";

export const MAINTENANCE_INTERVAL_MS = 60_000;
export const MAINTENANCE_FIRST_RUN_AFTER_MS = 5_000;
/** autovacuum's scale factor for ANALYZE (10% of a table changed), here of the whole database. */
export const MAINTENANCE_WAL_SHARE = 0.1;
export const MAINTENANCE_MIN_WAL_BYTES = 8 * 1024 * 1024;

export interface EmbeddedMaintenanceOptions {
  db: Db;
  logger: Logger;
  clock?: Clock;
  /** Time between checks of how much has changed. */
  intervalMs?: number;
  /** Wait after `start` before the first run. */
  firstRunAfterMs?: number;
  /** Share of the database's size the write-ahead log must grow by before a run. */
  walShare?: number;
  /** The least growth of the write-ahead log, in bytes, that calls for a run. */
  minWalBytes?: number;
}

interface WalPosition {
  /** Bytes written to the write-ahead log since it began. */
  wal: number;
  /** The database's size on disk, in bytes. */
  size: number;
}

const quoted = (name: string) => `"${name.replaceAll('"', '""')}"`;

export function createEmbeddedMaintenance(options: EmbeddedMaintenanceOptions) {
  const {
    db,
    logger,
    clock = systemClock,
    intervalMs = MAINTENANCE_INTERVAL_MS,
    firstRunAfterMs = MAINTENANCE_FIRST_RUN_AFTER_MS,
    walShare = MAINTENANCE_WAL_SHARE,
    minWalBytes = MAINTENANCE_MIN_WAL_BYTES,
  } = options;
  /** Where the write-ahead log stood after the last run; none: no run yet. */
  let walAtLastRun: number | undefined;

  const position = async (): Promise<WalPosition> => {
    const [row] = rows<WalPosition>(
      await db.execute(sql`select
        pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 as wal,
        pg_database_size(current_database())::float8 as size`),
    );
    if (!row) throw new Error("no write-ahead log position");
    return row;
  };

  const maintenance = {
    /** Whether enough has been written since the last run to call for another. */
    async due(): Promise<boolean> {
      if (walAtLastRun === undefined) return true;
      const { wal, size } = await position();
      return wal - walAtLastRun >= Math.max(minWalBytes, walShare * size);
    },

    /** Vacuums and analyzes every table of the application, one at a time; returns their names. */
    async run(): Promise<string[]> {
      const started = clock.now();
      const tables = rows<{ name: string }>(
        await db.execute(
          sql`select tablename as name from pg_tables where schemaname = 'public' order by 1`,
        ),
      ).map((t) => t.name);
      for (const table of tables) {
        await db.execute(sql.raw(`vacuum (analyze) public.${quoted(table)}`));
      }
      walAtLastRun = (await position()).wal;
      logger.info("embedded database vacuumed and analyzed", {
        tables: tables.length,
        duration_ms: clock.now() - started,
      });
      return tables;
    },

    /** Runs after `firstRunAfterMs`, then whenever due, checked every `intervalMs`, until `stop`. */
    ...repeat(
      clock,
      { firstAfterMs: firstRunAfterMs, intervalMs },
      async () => {
        if (await maintenance.due()) await maintenance.run();
      },
      (err) => logger.warn("embedded database maintenance failed; trying again later", { err }),
    ),
  };
  return maintenance;
}

export type EmbeddedMaintenance = ReturnType<typeof createEmbeddedMaintenance>;

/**
 * `database` with its maintenance running until it is closed, when it is embedded; a PostgreSQL
 * one as it is (its autovacuum does the work).
 */
export function withEmbeddedMaintenance(
  database: Database,
  options: Omit<EmbeddedMaintenanceOptions, "db">,
): Database {
  if (database.kind !== "embedded") return database;
  const maintenance = createEmbeddedMaintenance({ ...options, db: database.db });
  maintenance.start();
  return {
    ...database,
    close: async () => {
      await maintenance.stop();
      await database.close();
    },
  };
}
