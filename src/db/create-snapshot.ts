/** Makes the embedded database snapshot: an in-memory database, migrated, dumped as a tarball. */
import type { PGlite } from "@electric-sql/pglite";
import { silentLogger } from "../logger.ts";
import { openDatabase } from "./client.ts";
import { migrate } from "./migrate.ts";

export async function createSnapshot(): Promise<Blob> {
  const database = await openDatabase({ snapshot: null }, silentLogger);
  try {
    await migrate(database.db, silentLogger);
    const client = (database.db as unknown as { $client: PGlite }).$client;
    return await client.dumpDataDir("gzip");
  } finally {
    await database.close();
  }
}
