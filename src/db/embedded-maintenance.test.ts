import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createManualClock } from "../events/clock.ts";
import { silentLogger } from "../logger.ts";
import { testSnapshot } from "../testing/database.ts";
import { capturingLogger } from "../testing/logger.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { type Database, openDatabase } from "./client.ts";
import {
  createEmbeddedMaintenance,
  MAINTENANCE_FIRST_RUN_AFTER_MS,
  withEmbeddedMaintenance,
} from "./embedded-maintenance.ts";
import { migrate } from "./migrate.ts";
import { rows } from "./rows.ts";

// Embedded only, whatever DATABASE_URL says: PGlite is what has no autovacuum, and on a shared
// PostgreSQL other databases' writes would move the write-ahead log this watches.
let database: Database;

beforeAll(async () => {
  database = await openDatabase({ snapshot: await testSnapshot() }, silentLogger);
  await migrate(database.db, silentLogger);
}, SETUP_TIMEOUT_MS);
afterAll(() => database?.close(), SETUP_TIMEOUT_MS);
beforeEach(async () => {
  await database.db.execute(sql`delete from pets`);
}, SETUP_TIMEOUT_MS);

const RAN = "embedded database vacuumed and analyzed";

async function addPets(count: number) {
  await database.db.execute(sql`insert into pets (id, name, age, type)
    select gen_random_uuid(), 'Rex ' || g, g % 50, 'dog' from generate_series(1, ${count}) g`);
}

async function petsTable() {
  const [row] = rows<{ reltuples: number; relpages: number; relallvisible: number }>(
    await database.db.execute(
      sql`select reltuples, relpages, relallvisible from pg_class where relname = 'pets'`,
    ),
  );
  if (!row) throw new Error("no pets table");
  return row;
}

describe("embedded database maintenance", () => {
  test("a run vacuums and analyzes every table of the application", async () => {
    await addPets(2_000);
    const { logger, lines } = capturingLogger();
    const tables = await createEmbeddedMaintenance({ db: database.db, logger }).run();
    expect(tables).toContain("pets");
    expect(tables).toContain("books");
    // Analyzed: the planner knows how many rows there are. Vacuumed: every page all-visible, so
    // index-only scans need not read the table.
    const pets = await petsTable();
    expect(pets.reltuples).toBe(2_000);
    expect(pets.relpages).toBeGreaterThan(0);
    expect(pets.relallvisible).toBe(pets.relpages);
    expect(lines.filter((l) => l.msg === RAN)).toHaveLength(1);
  });

  test("runs soon after start, then again only once enough has been written", async () => {
    const clock = createManualClock();
    const { logger, lines } = capturingLogger();
    const maintenance = createEmbeddedMaintenance({
      db: database.db,
      logger,
      clock,
      intervalMs: 1_000,
      walShare: 0,
      minWalBytes: 256 * 1024,
    });
    const runs = () => lines.filter((l) => l.msg === RAN).length;
    maintenance.start();
    try {
      expect(await clock.tick()).toBe(MAINTENANCE_FIRST_RUN_AFTER_MS);
      expect(runs()).toBe(1);
      // Nothing written: the checks come and go without a run.
      await clock.tick();
      await clock.tick();
      expect(runs()).toBe(1);
      expect(await maintenance.due()).toBe(false);
      await addPets(5_000);
      expect(await maintenance.due()).toBe(true);
      await clock.tick();
      expect(runs()).toBe(2);
      expect((await petsTable()).reltuples).toBe(5_000);
      expect(await maintenance.due()).toBe(false);
    } finally {
      await maintenance.stop();
    }
  });

  test("a failed run is logged and tried again at the next check", async () => {
    const clock = createManualClock();
    const { logger, lines } = capturingLogger();
    let failures = 1;
    const db = new Proxy(database.db, {
      get(target, key) {
        if (key === "execute" && failures > 0) {
          failures--;
          return () => Promise.reject(new Error("the database is busy"));
        }
        return Reflect.get(target, key, target);
      },
    });
    const maintenance = createEmbeddedMaintenance({ db, logger, clock, intervalMs: 1_000 });
    maintenance.start();
    try {
      await clock.tick();
      expect(lines.find((l) => l.msg?.toString().includes("maintenance failed"))).toBeDefined();
      expect(lines.filter((l) => l.msg === RAN)).toHaveLength(0);
      await clock.tick();
      expect(lines.filter((l) => l.msg === RAN)).toHaveLength(1);
    } finally {
      await maintenance.stop();
    }
  });

  test("stop waits for a run under way and ends the checks", async () => {
    const clock = createManualClock();
    const { logger, lines } = capturingLogger();
    let vacuumStarted = () => {};
    const vacuuming = new Promise<void>((resolve) => (vacuumStarted = resolve));
    let letVacuumGo = () => {};
    const gate = new Promise<void>((resolve) => (letVacuumGo = resolve));
    const db = new Proxy(database.db, {
      get(target, key) {
        if (key !== "execute") return Reflect.get(target, key, target);
        return async (query: Parameters<typeof target.execute>[0]) => {
          if (JSON.stringify(query).includes("vacuum")) {
            vacuumStarted();
            await gate;
          }
          return target.execute(query);
        };
      },
    });
    const maintenance = createEmbeddedMaintenance({ db, logger, clock, intervalMs: 1_000 });
    maintenance.start();
    await clock.sleeping();
    clock.advance(MAINTENANCE_FIRST_RUN_AFTER_MS);
    await vacuuming;
    let stopped = false;
    const stopping = maintenance.stop().then(() => {
      stopped = true;
    });
    await Bun.sleep(0);
    expect(stopped).toBe(false);
    letVacuumGo();
    await stopping;
    expect(lines.filter((l) => l.msg === RAN)).toHaveLength(1);
    expect(clock.pending()).toEqual([]);
  });

  test("stopped before its first run, it never runs", async () => {
    const clock = createManualClock();
    const { logger, lines } = capturingLogger();
    const maintenance = createEmbeddedMaintenance({ db: database.db, logger, clock });
    maintenance.start();
    await clock.sleeping();
    await maintenance.stop();
    expect(lines).toEqual([]);
    expect(await maintenance.due()).toBe(true);
  });
});

describe("a command's database with maintenance", () => {
  /** `database` under another kind, its close recorded instead of done. */
  const kindOf = (kind: Database["kind"], closed: string[]): Database => ({
    ...database,
    kind,
    close: async () => {
      closed.push(kind);
    },
  });

  test("PostgreSQL is left as it is: its autovacuum does the work", async () => {
    const postgres = kindOf("postgres", []);
    const clock = createManualClock();
    expect(withEmbeddedMaintenance(postgres, { logger: silentLogger, clock })).toBe(postgres);
    expect(clock.pending()).toEqual([]);
  });

  test("embedded, the maintenance runs until the database is closed, and stops first", async () => {
    const closed: string[] = [];
    const clock = createManualClock();
    const { logger, lines } = capturingLogger();
    const maintained = withEmbeddedMaintenance(kindOf("embedded", closed), { logger, clock });
    await clock.sleeping();
    expect(await clock.tick()).toBe(MAINTENANCE_FIRST_RUN_AFTER_MS);
    expect(lines.filter((l) => l.msg === RAN)).toHaveLength(1);
    await clock.sleeping();
    await maintained.close();
    expect(closed).toEqual(["embedded"]);
    expect(clock.pending()).toEqual([]);
  });
});
