import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { silentLogger } from "../logger.ts";
import {
  createEmptyPostgresDatabase,
  createTestDatabase,
  type TestDatabase,
} from "../testing/database.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { openDatabase } from "./client.ts";
import { MIGRATIONS, migrate } from "./migrate.ts";
import { rows } from "./rows.ts";

describe("embedded migrations", () => {
  test("every drizzle/ migration is embedded, in order", async () => {
    const journal = await Bun.file(
      new URL("../../drizzle/meta/_journal.json", import.meta.url),
    ).json();
    expect(MIGRATIONS.map((m) => m.tag)).toEqual(
      journal.entries.map((e: { tag: string }) => e.tag),
    );
    for (const m of MIGRATIONS) expect(m.statements.length).toBeGreaterThan(0);
  });
});

describe("migrate", () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  }, SETUP_TIMEOUT_MS);
  afterAll(() => database?.close(), SETUP_TIMEOUT_MS);

  test("records every migration and applies nothing the second time", async () => {
    const applied = rows<{ n: number }>(
      await database.db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`),
    );
    expect(applied[0]?.n).toBe(MIGRATIONS.length);
    expect(await migrate(database.db, silentLogger)).toEqual([]);
  });

  test("creates the tables and seeds the counter shards", async () => {
    for (const table of ["pet_stats", "book_stats"]) {
      const stats = rows<{ shards: number; total: string | number }>(
        await database.db.execute(
          sql.raw(`select count(*)::int as shards, sum(total) as total from ${table}`),
        ),
      );
      expect(stats[0]).toMatchObject({ shards: 16 });
      expect(Number(stats[0]?.total)).toBe(0);
    }
  });
});

describe.skipIf(!process.env.DATABASE_URL)("concurrent migrate on PostgreSQL", () => {
  test("instances starting together all succeed and apply each migration once", async () => {
    const empty = await createEmptyPostgresDatabase();
    const instances = await Promise.all(
      [1, 2, 3].map(() => openDatabase({ databaseUrl: empty.url, poolSize: 2 }, silentLogger)),
    );
    try {
      const results = await Promise.all(instances.map((i) => migrate(i.db, silentLogger)));
      expect(results.flat().sort()).toEqual(MIGRATIONS.map((m) => m.tag).sort());
      const [first] = instances;
      const count = rows<{ n: number }>(
        await first?.db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`),
      );
      expect(count[0]?.n).toBe(MIGRATIONS.length);
    } finally {
      await Promise.all(instances.map((i) => i.close()));
      await empty.drop();
    }
  });
});
