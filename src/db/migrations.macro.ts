/**
 * Bun macro: runs when this module is bundled (and when Bun loads it from source), inlining the
 * SQL migrations from drizzle/ so the compiled binary carries them without a drizzle/ folder.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readMigrationFiles } from "drizzle-orm/migrator";

export interface EmbeddedMigration {
  tag: string;
  createdAt: number;
  hash: string;
  statements: string[];
}

export function embeddedMigrations(): EmbeddedMigration[] {
  const folder = join(import.meta.dir, "../../drizzle");
  const journal: { entries: { tag: string }[] } = JSON.parse(
    readFileSync(join(folder, "meta/_journal.json"), "utf8"),
  );
  return readMigrationFiles({ migrationsFolder: folder }).map((m, i) => ({
    tag: journal.entries[i]?.tag ?? `migration_${i}`,
    createdAt: m.folderMillis,
    hash: m.hash,
    statements: m.sql.map((s) => s.trim()).filter((s) => s.length > 0),
  }));
}
