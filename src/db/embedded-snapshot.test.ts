import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { createLogger } from "../logger.ts";
import { testSnapshot } from "../testing/database.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { openDatabase } from "./client.ts";
import { createSnapshot } from "./create-snapshot.ts";
import { MIGRATIONS, migrate } from "./migrate.ts";
import { rows } from "./rows.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}, TEARDOWN_TIMEOUT_MS);

function newDataDir() {
  const dir = mkdtempSync(join(tmpdir(), "petbooks-snapshot-test-"));
  dirs.push(dir);
  return dir;
}

async function appliedTags(dataDir: string, logLines: string[] = []) {
  const logger = createLogger("info", (line) => logLines.push(line));
  const database = await openDatabase({ dataDir, snapshot: await testSnapshot() }, logger);
  try {
    const applied = await migrate(database.db, logger);
    const recorded = rows<{ n: number }>(
      await database.db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`),
    );
    return { applied, recorded: recorded[0]?.n };
  } finally {
    await database.close();
  }
}

describe.skipIf(Boolean(process.env.DATABASE_URL))("embedded database snapshot", () => {
  test(
    "a new data directory starts from the snapshot, says so before the wait, and needs no migration",
    async () => {
      const dataDir = newDataDir();
      const logs: string[] = [];
      const { applied, recorded } = await appliedTags(dataDir, logs);
      expect(applied).toEqual([]);
      expect(recorded).toBe(MIGRATIONS.length);
      expect(existsSync(join(dataDir, "pgdata", "PG_VERSION"))).toBe(true);
      const first = JSON.parse(logs[0] ?? "{}");
      expect(first).toMatchObject({
        msg: "creating the embedded database",
        data_dir: join(dataDir, "pgdata"),
        from: "snapshot",
      });
    },
    SETUP_TIMEOUT_MS,
  );

  test(
    "an existing data directory is reopened as it is, not replaced by the snapshot",
    async () => {
      const dataDir = newDataDir();
      const logger = createLogger("error", () => {});
      const first = await openDatabase({ dataDir, snapshot: await testSnapshot() }, logger);
      await first.db.execute(sql`create table kept as select 'kept' as name`);
      await first.close();
      const logs: string[] = [];
      const again = await openDatabase(
        { dataDir, snapshot: await testSnapshot() },
        createLogger("info", (line) => logs.push(line)),
      );
      try {
        const kept = rows<{ name: string }>(await again.db.execute(sql`select name from kept`));
        expect(kept.map((k) => k.name)).toEqual(["kept"]);
        expect(logs.join("\n")).not.toContain("creating the embedded database");
      } finally {
        await again.close();
      }
    },
    SETUP_TIMEOUT_MS,
  );

  test(
    "a snapshot older than the newest migration is migrated forward",
    async () => {
      const older = await createSnapshot(MIGRATIONS.slice(0, 3));
      const dataDir = newDataDir();
      const logs: string[] = [];
      const logger = createLogger("info", (line) => logs.push(line));
      const database = await openDatabase({ dataDir, snapshot: older }, logger);
      try {
        const applied = await migrate(database.db, logger);
        expect(applied).toEqual(MIGRATIONS.slice(3).map((m) => m.tag));
        expect(logs.some((l) => l.includes('"msg":"migrating the database"'))).toBe(true);
      } finally {
        await database.close();
      }
    },
    SETUP_TIMEOUT_MS,
  );
});
