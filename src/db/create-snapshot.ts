/** Makes the embedded database snapshot: an in-memory database, migrated, dumped as a tarball. */
import type { PGlite } from "@electric-sql/pglite";
import { silentLogger } from "../logger.ts";
import { openDatabase } from "./client.ts";
import { MIGRATIONS, migrate } from "./migrate.ts";
import type { EmbeddedMigration } from "./migrations.macro.ts";

/** `migrations` is for tests that need a snapshot made by an older version. */
export async function createSnapshot(migrations: EmbeddedMigration[] = MIGRATIONS): Promise<Blob> {
  const database = await openDatabase({ snapshot: null }, silentLogger);
  try {
    await migrate(database.db, silentLogger, migrations);
    const client = (database.db as unknown as { $client: PGlite }).$client;
    return await client.dumpDataDir("gzip");
  } finally {
    await database.close();
  }
}
