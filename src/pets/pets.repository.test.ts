import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import type { JsonText } from "../db/json-text.ts";
import { renderSql } from "../db/prepared.ts";
import { rows } from "../db/rows.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { newPet } from "../testing/factories.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { until } from "../testing/until.ts";
import type { PetList } from "./pets.model.ts";
import { createPetsRepository, listPageQuery, type PetsRepository } from "./pets.repository.ts";

let database: TestDatabase;
let repo: PetsRepository;

beforeAll(async () => {
  database = await createTestDatabase();
  repo = createPetsRepository(database.db);
}, SETUP_TIMEOUT_MS);
afterAll(() => database?.close(), SETUP_TIMEOUT_MS);
beforeEach(async () => {
  await database.db.execute(sql`delete from pets`);
}, SETUP_TIMEOUT_MS);

async function insertPet(createdAt?: string) {
  const pet = await repo.insert({ id: Bun.randomUUIDv7(), ...newPet() });
  if (createdAt) {
    await database.db.execute(
      sql`update pets set created_at = ${createdAt}::timestamptz where id = ${pet.id}`,
    );
  }
  return pet;
}

let photoSeq = 0;
async function addPhoto(petId: string) {
  photoSeq += 1;
  const fileName = `${String(photoSeq).padStart(22, "x")}.png`;
  await repo.insertPhoto({
    id: Bun.randomUUIDv7(),
    petId,
    fileName,
    contentType: "image/png",
    sizeBytes: 10,
  });
  return fileName;
}

const PHOTO_URL_BASE = "http://127.0.0.1:3000/photos/";
const photoUrl = (fileName: string) => `${PHOTO_URL_BASE}${fileName}`;
/** JSON text as a string; bytes must be valid UTF-8. */
const asString = (json: JsonText) =>
  typeof json === "string" ? json : new TextDecoder("utf-8", { fatal: true }).decode(json);

/** GET /pets' answer as the repository writes it, parsed. */
const listPage = async (page: { limit: number; offset: number; hasPhotos: boolean | undefined }) =>
  JSON.parse(asString(await repo.listJson(page, PHOTO_URL_BASE))) as PetList;

/**
 * The plan of a page's statement, sequential scans off: on tables this small they are cheapest,
 * and the choice between the others is what the plan tests are about.
 */
const explainPage = (page: { limit: number; offset: number; hasPhotos: boolean | undefined }) =>
  database.db.transaction(async (tx) => {
    await tx.execute(sql`set local enable_seqscan = off`);
    const explained = await tx.execute(
      sql.raw(`explain (costs off) ${renderSql(listPageQuery(page, PHOTO_URL_BASE))}`),
    );
    return rows<{ "QUERY PLAN": string }>(explained)
      .map((r) => r["QUERY PLAN"])
      .join("\n");
  });

/**
 * VACUUM ANALYZE, repeated until every page of `table` is marked all-visible, as pages of a live
 * table soon are: a snapshot held elsewhere in the database when it runs (autovacuum's ANALYZE,
 * say) can keep a vacuum from marking them, and the planner would then rightly prefer another scan.
 */
const vacuumUntilAllVisible = (table: "pets" | "pet_photos") =>
  until(
    `every page of ${table} all-visible`,
    async () => {
      await database.db.execute(sql.raw(`vacuum analyze ${table}`));
      const [state] = rows<{ visible: boolean }>(
        await database.db.execute(
          sql.raw(
            `select relallvisible >= relpages as visible from pg_class where oid = '${table}'::regclass`,
          ),
        ),
      );
      return state?.visible;
    },
    { timeoutMs: 20_000, everyMs: 50 },
  );

const pick = (pet: { id: string; name: string; age: number; type: string }) => ({
  id: pet.id,
  name: pet.name,
  age: pet.age,
  type: pet.type,
});

/** The counters must always equal what count(*) says. */
async function expectCountersExact() {
  const truth = rows<{ total: number; with_photos: number }>(
    await database.db.execute(sql`select count(*)::int as total,
      count(*) filter (where exists (select 1 from pet_photos ph where ph.pet_id = pets.id))::int
        as with_photos
      from pets`),
  )[0];
  expect(await repo.count(undefined)).toBe(truth?.total as number);
  expect(await repo.count(true)).toBe(truth?.with_photos as number);
  expect(await repo.count(false)).toBe((truth?.total ?? 0) - (truth?.with_photos ?? 0));
}

describe("pets repository", () => {
  test("insert returns the stored pet with a UTC second-precision timestamp", async () => {
    const pet = await repo.insert({ id: Bun.randomUUIDv7(), name: "boy", age: 7, type: "dog" });
    expect(pet).toMatchObject({ name: "boy", age: 7, type: "dog", photos: [] });
    expect(pet.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/);
    expect(Math.abs(Date.parse(`${pet.createdAt}Z`) - Date.now())).toBeLessThan(60_000);
  });

  test("lists newest first with a stable tie-break on id", async () => {
    const same = "2024-01-01T00:00:00Z";
    const a = await insertPet(same);
    const b = await insertPet(same);
    const older = await insertPet("2023-06-01T12:00:00Z");
    const newer = await insertPet("2025-02-03T04:05:06Z");
    const page = (await listPage({ limit: 10, offset: 0, hasPhotos: undefined })).items;
    const tied = [a.id, b.id].sort().reverse();
    expect(page.map((p) => p.id)).toEqual([newer.id, ...tied, older.id]);
    expect(page[0]?.created_at).toBe("2025-02-03T04:05:06");
  });

  test("listJson writes the bytes JSON.stringify writes for the same answer", async () => {
    const pet = await insertPet("2024-05-05T05:05:05.123456Z");
    // Quotes, backslashes, control characters, non-ASCII, a character outside the BMP, U+2028.
    const name = 'Rex "the\\dog"\t\n\u0001\u001f\u007f é ü 🐕 \u2028 </script>';
    await database.db.execute(sql`update pets set name = ${name} where id = ${pet.id}`);
    const first = await addPhoto(pet.id);
    const second = await addPhoto(pet.id);
    const bare = await insertPet("2023-01-01T00:00:00Z");
    const base = "http://h/it's\\\"é/photos/";
    const photoIds = rows<{ id: string }>(
      await database.db.execute(
        sql`select id from pet_photos where pet_id = ${pet.id} order by created_at, id`,
      ),
    ).map((r) => r.id);
    const withPhotos = {
      ...pick({ ...pet, name }),
      photos: [
        { id: photoIds[0], url: `${base}${first}` },
        { id: photoIds[1], url: `${base}${second}` },
      ],
      created_at: "2024-05-05T05:05:05",
    };
    const without = { ...pick(bare), photos: [], created_at: "2023-01-01T00:00:00" };
    const answers = [
      { hasPhotos: undefined, items: [withPhotos, without] },
      { hasPhotos: true, items: [withPhotos] },
      { hasPhotos: false, items: [without] },
    ];
    for (const { hasPhotos, items } of answers) {
      const text = await repo.listJson({ limit: 10, offset: 0, hasPhotos }, base);
      expect(asString(text)).toBe(JSON.stringify({ count: items.length, items }));
    }
    const empty = await repo.listJson({ limit: 10, offset: 5, hasPhotos: undefined }, base);
    expect(asString(empty)).toBe(JSON.stringify({ count: 2, items: [] }));
  });

  test("on PostgreSQL, listJson answers the bytes PostgreSQL sent, not a string", async () => {
    const json = await repo.listJson({ limit: 10, offset: 0, hasPhotos: undefined }, "b/");
    expect(json instanceof Uint8Array).toBe(Boolean(process.env.DATABASE_URL));
  });

  test("a pet written in a session on another time zone still shows created_at in UTC", async () => {
    const pet = await insertPet();
    // The stored JSON pieces are written by whichever session writes the row (drizzle/0013).
    await database.db.transaction(async (tx) => {
      await tx.execute(sql`set local time zone 'Asia/Kathmandu'`);
      await tx.execute(
        sql`update pets set created_at = '2024-05-05T05:05:05Z'::timestamptz where id = ${pet.id}`,
      );
    });
    const [shown] = (await listPage({ limit: 1, offset: 0, hasPhotos: undefined })).items;
    expect(shown?.created_at).toBe("2024-05-05T05:05:05");
    const [exported] = (await exportBatches(undefined, 10)).flat();
    expect(exported?.created_at).toBe("2024-05-05T05:05:05");
  });

  test("limit and offset page through without overlap", async () => {
    for (let i = 0; i < 7; i++) await insertPet(`2024-01-0${i + 1}T00:00:00Z`);
    const all = (await listPage({ limit: 100, offset: 0, hasPhotos: undefined })).items;
    const pages = [];
    for (let offset = 0; offset < 7; offset += 3) {
      pages.push(...(await listPage({ limit: 3, offset, hasPhotos: undefined })).items);
    }
    expect(pages.map((p) => p.id)).toEqual(all.map((p) => p.id));
    const beyond = await listPage({ limit: 3, offset: 50, hasPhotos: undefined });
    expect(beyond).toEqual({ count: 7, items: [] });
    expect((await listPage({ limit: 3, offset: 0, hasPhotos: undefined })).count).toBe(7);
  });

  test("later pages of every filter hold what the whole list holds, photos included", async () => {
    for (let i = 0; i < 8; i++) {
      const pet = await insertPet(`2024-01-0${i + 1}T00:00:00Z`);
      if (i % 3 !== 0) await addPhoto(pet.id);
      if (i % 3 === 2) await addPhoto(pet.id);
    }
    for (const hasPhotos of [undefined, true, false]) {
      const all = await listPage({ limit: 100, offset: 0, hasPhotos });
      const pages = [];
      for (let offset = 0; offset < all.count; offset += 3) {
        const page = await listPage({ limit: 3, offset, hasPhotos });
        expect(page.count).toBe(all.count);
        pages.push(...page.items);
      }
      expect(pages).toEqual(all.items);
    }
  });

  test("filters by has_photos and aggregates photos oldest first", async () => {
    const withPhotos = await insertPet();
    const without = await insertPet();
    const first = await addPhoto(withPhotos.id);
    const second = await addPhoto(withPhotos.id);
    const only = (await listPage({ limit: 10, offset: 0, hasPhotos: true })).items;
    expect(only.map((p) => p.id)).toEqual([withPhotos.id]);
    expect(only[0]?.photos.map((p) => p.url)).toEqual([first, second].map(photoUrl));
    const none = (await listPage({ limit: 10, offset: 0, hasPhotos: false })).items;
    expect(none.map((p) => p.id)).toEqual([without.id]);
    expect(none[0]?.photos).toEqual([]);
    expect((await listPage({ limit: 10, offset: 0, hasPhotos: true })).count).toBe(1);
    expect((await listPage({ limit: 10, offset: 0, hasPhotos: false })).count).toBe(1);
    await expectCountersExact();
  });

  test("counters stay exact through inserts, photos and deletes", async () => {
    const pets = await Promise.all([1, 2, 3, 4, 5].map(() => insertPet()));
    await expectCountersExact();
    const [p1, p2, p3] = pets as [(typeof pets)[0], (typeof pets)[0], (typeof pets)[0]];
    await addPhoto(p1.id);
    await addPhoto(p1.id);
    await addPhoto(p2.id);
    await expectCountersExact();
    expect(await repo.count(true)).toBe(2);
    // Removing one of two photos keeps the pet "with photos".
    await database.db.execute(sql`delete from pet_photos where id in (
      select id from pet_photos where pet_id = ${p1.id} limit 1)`);
    await expectCountersExact();
    expect(await repo.count(true)).toBe(2);
    const removed = await repo.deleteMany([p1.id, p3.id]);
    expect(removed.deletedIds.sort()).toEqual([p1.id, p3.id].sort());
    expect(removed.fileNames).toHaveLength(1);
    await expectCountersExact();
    expect(await repo.count(undefined)).toBe(3);
    // A cascade from a plain SQL delete keeps them right too.
    await database.db.execute(sql`delete from pets where id = ${p2.id}`);
    await expectCountersExact();
    expect(await repo.count(true)).toBe(0);
  });

  test("concurrent photo uploads to one pet count once as 'with photos'", async () => {
    const pet = await insertPet();
    await Promise.all([1, 2, 3, 4, 5, 6].map(() => addPhoto(pet.id)));
    const [row] = rows<{ photo_count: number }>(
      await database.db.execute(sql`select photo_count from pets where id = ${pet.id}`),
    );
    expect(row?.photo_count).toBe(6);
    expect(await repo.count(true)).toBe(1);
    await expectCountersExact();
  });

  test("deleteMany returns the photo files of the deleted pets only", async () => {
    const keep = await insertPet();
    const drop = await insertPet();
    await addPhoto(keep.id);
    const dropped = await addPhoto(drop.id);
    const result = await repo.deleteMany([drop.id, Bun.randomUUIDv7()]);
    expect(result).toEqual({ deletedIds: [drop.id], fileNames: [dropped] });
    expect(await repo.exists(keep.id)).toBe(true);
    expect(await repo.exists(drop.id)).toBe(false);
  });

  /** A URL base with the characters a SQL literal and JSON must escape. */
  const URL_BASE = "http://h/it's\\/photos/";

  /** The pets of each batch the export yields, parsed. */
  async function exportBatches(hasPhotos: boolean | undefined, chunk: number) {
    const batches: { id: string; photos: string[]; created_at: string }[][] = [];
    for await (const batch of repo.exportJson(hasPhotos, URL_BASE, chunk)) {
      const json =
        typeof batch.json === "string" ? batch.json : new TextDecoder().decode(batch.json);
      const pets = JSON.parse(`[${json}]`);
      expect(pets).toHaveLength(batch.count);
      batches.push(pets);
    }
    return batches;
  }

  test("exportJson walks every pet once, newest first, across equal timestamps", async () => {
    const same = "2024-05-05T05:05:05.123456Z";
    for (let i = 0; i < 5; i++) await insertPet(same);
    for (let i = 0; i < 4; i++) await insertPet(`2024-0${i + 1}-01T00:00:00Z`);
    const expected = (await listPage({ limit: 100, offset: 0, hasPhotos: undefined })).items.map(
      (p) => p.id,
    );
    const batches = await exportBatches(undefined, 2);
    expect(batches.map((b) => b.length)).toEqual([2, 2, 2, 2, 1]);
    expect(batches.flat().map((p) => p.id)).toEqual(expected);
  });

  test("exportJson writes each pet as the export shows it, photos as URLs", async () => {
    const pet = await insertPet("2024-05-05T05:05:05.123456Z");
    await database.db.execute(
      sql`update pets set name = ${'Rex "the\\dog" é'} where id = ${pet.id}`,
    );
    const first = await addPhoto(pet.id);
    const second = await addPhoto(pet.id);
    const bare = await insertPet("2023-01-01T00:00:00Z");
    for await (const batch of repo.exportJson(undefined, URL_BASE, 1000)) {
      const json =
        typeof batch.json === "string" ? batch.json : new TextDecoder().decode(batch.json);
      const exported = JSON.parse(`[${json}]`);
      expect(exported).toEqual([
        {
          ...pick(pet),
          name: 'Rex "the\\dog" é',
          photos: [URL_BASE + first, URL_BASE + second],
          created_at: "2024-05-05T05:05:05",
        },
        { ...pick(bare), photos: [], created_at: "2023-01-01T00:00:00" },
      ]);
      // Byte for byte what JSON.stringify would write: keys in this order, no spaces.
      expect(json).toBe(exported.map((p: unknown) => JSON.stringify(p)).join(","));
    }
    const only = async (hasPhotos: boolean) =>
      (await exportBatches(hasPhotos, 1000)).flat().map((p) => p.id);
    expect(await only(true)).toEqual([pet.id]);
    expect(await only(false)).toEqual([bare.id]);
  });

  test("exportJson yields nothing when no pet matches, and can stop early", async () => {
    expect(await exportBatches(true, 10)).toEqual([]);
    for (let i = 0; i < 3; i++) await insertPet();
    for await (const batch of repo.exportJson(undefined, URL_BASE, 1)) {
      expect(batch.count).toBe(1);
      break;
    }
    // The export's transaction is over: the database answers again.
    expect(await repo.count(undefined)).toBe(3);
  });

  test("a page reads its pets' photos from the index alone, already in their order", async () => {
    for (let i = 0; i < 3; i++) {
      const pet = await insertPet();
      await addPhoto(pet.id);
      await addPhoto(pet.id);
    }
    // All pages visible, as they soon are in a live table: an index-only scan reads no row.
    await vacuumUntilAllVisible("pet_photos");
    const plan = await explainPage({ limit: 20, offset: 0, hasPhotos: true });
    expect(plan).toContain("Index Only Scan using pet_photos_pet_id_idx on pet_photos");
    expect(plan).not.toContain("Bitmap Heap Scan on pet_photos");
  }, 30_000);

  test("a later page skips its offset in the newest-first index alone, whatever the filter", async () => {
    for (let i = 0; i < 6; i++) {
      const pet = await insertPet();
      if (i % 2 === 0) await addPhoto(pet.id);
    }
    await vacuumUntilAllVisible("pets");
    for (const hasPhotos of [undefined, true, false]) {
      const plan = await explainPage({ limit: 2, offset: 2, hasPhotos });
      expect(plan).toContain("Index Only Scan using pets_newest_first_idx on pets");
    }
  }, 30_000);
});
