/** All SQL for pets and their photos. */
import { desc, eq, inArray, type SQL, sql } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import type { Db } from "../db/client.ts";
import { preparedOnce } from "../db/prepared.ts";
import { rows } from "../db/rows.ts";
import { integerLiteral } from "../db/sql.ts";
import type { HasPhotosFilter, PetType } from "./pets.model.ts";
import { petPhotos, petStats, pets } from "./pets.table.ts";

export interface PetRow {
  id: string;
  name: string;
  age: number;
  type: PetType;
  /** UTC, `YYYY-MM-DDTHH:MM:SS`. */
  createdAt: string;
  photos: PhotoRef[];
}

export interface PhotoRef {
  id: string;
  fileName: string;
}

/** Position after the last exported pet: its `created_at` in UTC at full precision, and id. */
export interface ExportCursor {
  createdAt: string;
  id: string;
}

export interface NewPhotoRow {
  id: string;
  petId: string;
  fileName: string;
  contentType: string;
  sizeBytes: number;
}

const createdAtText = (column: SQL | typeof pets.createdAt) =>
  sql<string>`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')`;

/** Unqualified on purpose: used on `pets` inside the page subqueries; undefined for no filter. */
const hasPhotosCondition = (hasPhotos: HasPhotosFilter) =>
  hasPhotos === undefined ? undefined : hasPhotos ? sql`photo_count > 0` : sql`photo_count = 0`;

/** The count that matches a filter, summed over the pet_stats shards. */
const countColumn = (hasPhotos: HasPhotosFilter) =>
  hasPhotos === undefined
    ? sql`sum(total)`
    : hasPhotos
      ? sql`sum(with_photos)`
      : sql`sum(total - with_photos)`;

/** Photos of the pet aliased `p`, oldest first, as `[[id, file_name], ...]`, or null for none. */
const photosOfP = sql`(
  select json_agg(json_build_array(ph.id, ph.file_name) order by ph.created_at, ph.id)
  from ${petPhotos} ph where ph.pet_id = p.id)`;

/**
 * The pets of the page aliased `p`, in order, as one JSON array of
 * `[id, name, age, type, created_at, photos]`. One value for the whole page is much cheaper to
 * decode than a row per pet (the driver then makes one string and one JSON.parse, not seven
 * strings per pet), which was most of the CPU a listing and an export spent in the driver.
 * `created_at` is the UTC timestamp as JSON writes it (ISO 8601, microseconds when there are
 * any): the first 19 characters are the API's `YYYY-MM-DDTHH:MM:SS`, and the whole of it is the
 * export's cursor.
 */
const petsOfPage = (hasPhotos: HasPhotosFilter) => sql`coalesce(json_agg(json_build_array(
    p.id, p.name, p.age, p.type, p.created_at at time zone 'UTC', ${photosOfPage(hasPhotos)})
  order by p.created_at desc, p.id desc), '[]'::json)`;

/**
 * Most pets have no photo: the trigger-kept photo_count spares them the lookup in pet_photos,
 * which was most of what PostgreSQL spent per exported pet.
 */
const photosOfPage = (hasPhotos: HasPhotosFilter) => {
  if (hasPhotos === false) return sql`null`;
  if (hasPhotos === true) return photosOfP;
  return sql`case when p.photo_count > 0 then ${photosOfP} end`;
};

/** What the page subqueries select from `pets`, as `p`. */
const pageColumns = sql`${pets.id}, ${pets.name}, ${pets.age}, ${pets.type}, ${pets.createdAt}, ${pets.photoCount}`;

/**
 * GET /pets in one statement: the page and the exact count, read from the counters. LIMIT and
 * OFFSET go in as literals, so PostgreSQL plans for the actual numbers: as parameters of a
 * prepared statement its generic plan sorts the whole table for every page (measured: 65 ms
 * instead of 1 ms for a first page). Photos are aggregated only for the rows of the page, never
 * for the rows OFFSET skips. Exported so that the benchmark's ceiling runs this very statement.
 */
export function listPageQuery(page: { limit: number; offset: number; hasPhotos: HasPhotosFilter }) {
  const condition = hasPhotosCondition(page.hasPhotos);
  return sql`
    select ${petsOfPage(page.hasPhotos)} as pets,
      (select coalesce(${countColumn(page.hasPhotos)}, 0) from ${petStats}) as total
    from (
      select ${pageColumns} from ${pets}
      ${condition ? sql`where ${condition}` : sql``}
      order by ${pets.createdAt} desc, ${pets.id} desc
      limit ${integerLiteral(page.limit)} offset ${integerLiteral(page.offset)}
    ) p`;
}

/**
 * One batch of the export: the `limit` pets after the cursor (`afterAt`, UTC, and `afterId`),
 * newest first, as one JSON array (see petsOfPage); the first batch starts after `infinity`.
 * Keyset pagination through the newest-first index: constant cost per batch however deep it
 * goes. A prepared statement (parsed and planned once per connection, not once per batch) whose
 * LIMIT is a literal: with LIMIT a parameter too, the generic plan sorts the whole table for
 * every batch; with the LIMIT known it is the index scan.
 */
export function exportBatchQuery(db: Db, limit: number, hasPhotos: HasPhotosFilter) {
  const afterCursor = sql`(${pets.createdAt}, ${pets.id}) < (
    ${sql.placeholder("afterAt")}::timestamp at time zone 'UTC', ${sql.placeholder("afterId")}::uuid)`;
  const condition = hasPhotosCondition(hasPhotos);
  const batch = db
    .select({
      id: pets.id,
      name: pets.name,
      age: pets.age,
      type: pets.type,
      createdAt: pets.createdAt,
      photoCount: pets.photoCount,
    })
    .from(pets)
    .where(condition ? sql`${condition} and ${afterCursor}` : afterCursor)
    .orderBy(desc(pets.createdAt), desc(pets.id))
    // Drizzle inlines an SQL object here; its types only admit numbers (which it would bind).
    .limit(integerLiteral(limit) as unknown as number)
    .as("p");
  return db.select({ pets: petsOfPage(hasPhotos) }).from(batch);
}

/** A pet of petsOfPage: `[id, name, age, type, created_at, photos]`. */
type PetArray = [string, string, number, PetType, string, [string, string][] | null];

/** postgres.js and PGlite both decode json, but be tolerant of a driver that does not. */
function petArrays(value: unknown): PetArray[] {
  return (typeof value === "string" ? JSON.parse(value) : value) as PetArray[];
}

function toPetRow([id, name, age, type, createdAt, photos]: PetArray): PetRow {
  return {
    id,
    name,
    age,
    type,
    createdAt: createdAt.slice(0, 19),
    photos: photos === null ? [] : photos.map(([photoId, fileName]) => ({ id: photoId, fileName })),
  };
}

/**
 * Rendered GET /pets statements by filter, limit and offset. Rendering one with Drizzle cost
 * more CPU than anything else the request does in this process; a few hundred distinct pages
 * cover what clients ask for again and again.
 */
const PAGE_STATEMENTS_KEPT = 500;
const dialect = new PgDialect();

export function createPetsRepository(db: Db) {
  const placeholder = sql.placeholder;
  const insertPet = preparedOnce(() =>
    db
      .insert(pets)
      .values({
        id: placeholder("id"),
        name: placeholder("name"),
        age: placeholder("age"),
        type: placeholder("type"),
      })
      .returning({
        id: pets.id,
        name: pets.name,
        age: pets.age,
        type: pets.type,
        createdAt: createdAtText(pets.createdAt),
      })
      .prepare("pets_insert"),
  );
  const findId = preparedOnce(() =>
    db
      .select({ id: pets.id })
      .from(pets)
      .where(eq(pets.id, placeholder("id")))
      .prepare("pets_exists"),
  );
  const insertPhoto = preparedOnce(() =>
    db
      .insert(petPhotos)
      .values({
        id: placeholder("id"),
        petId: placeholder("petId"),
        fileName: placeholder("fileName"),
        contentType: placeholder("contentType"),
        sizeBytes: placeholder("sizeBytes"),
      })
      .prepare("pet_photos_insert"),
  );
  const readStats = preparedOnce(() =>
    db
      .select({
        total: sql<string>`coalesce(sum(${petStats.total}), 0)`,
        withPhotos: sql<string>`coalesce(sum(${petStats.withPhotos}), 0)`,
      })
      .from(petStats)
      .prepare("pet_stats_read"),
  );

  const pageStatements = new Map<string, SQL>();
  const pageStatement = (page: { limit: number; offset: number; hasPhotos: HasPhotosFilter }) => {
    const key = `${page.hasPhotos}:${page.limit}:${page.offset}`;
    let statement = pageStatements.get(key);
    if (!statement) {
      if (pageStatements.size >= PAGE_STATEMENTS_KEPT) pageStatements.clear();
      statement = sql.raw(dialect.sqlToQuery(listPageQuery(page)).sql);
      pageStatements.set(key, statement);
    }
    return statement;
  };

  const exportStatements = new Map<string, ReturnType<typeof prepareExport>>();
  const prepareExport = (limit: number, hasPhotos: HasPhotosFilter) =>
    exportBatchQuery(db, limit, hasPhotos).prepare(`pets_export_${hasPhotos}_${limit}`);
  const exportStatement = (limit: number, hasPhotos: HasPhotosFilter) => {
    const key = `${hasPhotos}:${limit}`;
    let statement = exportStatements.get(key);
    if (!statement) {
      statement = prepareExport(limit, hasPhotos);
      exportStatements.set(key, statement);
    }
    return statement;
  };

  return {
    async insert(pet: { id: string; name: string; age: number; type: PetType }): Promise<PetRow> {
      const [row] = await insertPet().execute(pet);
      if (!row) throw new Error("insert returned no row");
      return { ...row, photos: [] };
    },

    /** Many pets in one statement (seeding); returns their ids. */
    async insertMany(
      rows: { id: string; name: string; age: number; type: PetType }[],
    ): Promise<string[]> {
      if (rows.length === 0) return [];
      const inserted = await db.insert(pets).values(rows).returning({ id: pets.id });
      return inserted.map((r) => r.id);
    },

    async exists(id: string): Promise<boolean> {
      const found = await findId().execute({ id });
      return found.length > 0;
    },

    async insertPhoto(photo: NewPhotoRow): Promise<void> {
      await insertPhoto().execute({ ...photo });
    },

    /**
     * One page, newest first, and the exact count of matching pets, in one round trip (see
     * listPageQuery). The count is `undefined` for an empty page (ask `count`).
     */
    async listPage(page: { limit: number; offset: number; hasPhotos: HasPhotosFilter }) {
      const [row] = rows<{ pets: unknown; total: string }>(await db.execute(pageStatement(page)));
      const found = petArrays(row?.pets ?? []).map(toPetRow);
      return { pets: found, total: found.length > 0 ? Number(row?.total) : undefined };
    },

    /** Exact, from the trigger-maintained counters: no scan of the pets table. */
    async count(hasPhotos: HasPhotosFilter): Promise<number> {
      const [stats] = await readStats().execute();
      if (!stats) return 0;
      const total = Number(stats.total);
      const withPhotos = Number(stats.withPhotos);
      return hasPhotos === undefined ? total : hasPhotos ? withPhotos : total - withPhotos;
    },

    /**
     * Deletes the pets and their photo rows in one transaction and returns what went, so the
     * caller can remove the files after commit. The pets are locked first: a photo upload racing
     * with the delete then either finishes before it (and its file is returned here) or fails.
     */
    async deleteMany(ids: string[]): Promise<{ deletedIds: string[]; fileNames: string[] }> {
      if (ids.length === 0) return { deletedIds: [], fileNames: [] };
      return db.transaction(async (tx) => {
        await tx.select({ id: pets.id }).from(pets).where(inArray(pets.id, ids)).for("update");
        const photos = await tx
          .delete(petPhotos)
          .where(inArray(petPhotos.petId, ids))
          .returning({ fileName: petPhotos.fileName });
        const deleted = await tx
          .delete(pets)
          .where(inArray(pets.id, ids))
          .returning({ id: pets.id });
        return { deletedIds: deleted.map((r) => r.id), fileNames: photos.map((p) => p.fileName) };
      });
    },

    /** The export's next batch after `after` (the first batch without it); see exportBatchQuery. */
    async exportBatch(after: ExportCursor | undefined, limit: number, hasPhotos: HasPhotosFilter) {
      const [row] = await exportStatement(limit, hasPhotos).execute({
        afterAt: after?.createdAt ?? "infinity",
        afterId: after?.id ?? "00000000-0000-0000-0000-000000000000",
      });
      const arrays = petArrays(row?.pets ?? []);
      const last = arrays.at(-1);
      return {
        pets: arrays.map(toPetRow),
        next: last ? { createdAt: last[4], id: last[0] } : undefined,
      };
    },
  };
}

export type PetsRepository = ReturnType<typeof createPetsRepository>;
