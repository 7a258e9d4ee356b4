/** All SQL for pets and their photos. */
import { eq, inArray, type SQL, sql } from "drizzle-orm";
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

/** Position after the last exported pet, at full timestamp precision. */
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

/** Unqualified on purpose: used both on `pets` and on `pets` aliased `p`. */
const hasPhotosCondition = (hasPhotos: HasPhotosFilter) =>
  hasPhotos === undefined ? sql`true` : hasPhotos ? sql`photo_count > 0` : sql`photo_count = 0`;

/** The count that matches a filter, summed over the pet_stats shards. */
const countColumn = (hasPhotos: HasPhotosFilter) =>
  hasPhotos === undefined
    ? sql`sum(total)`
    : hasPhotos
      ? sql`sum(with_photos)`
      : sql`sum(total - with_photos)`;

/** Photos of the pet aliased `p`, oldest first, as `[[id, file_name], ...]`. */
const photosOfP = sql`coalesce((
  select json_agg(json_build_array(ph.id, ph.file_name) order by ph.created_at, ph.id)
  from ${petPhotos} ph where ph.pet_id = p.id), '[]'::json)`;

interface RawPetRow {
  id: string;
  name: string;
  age: number;
  type: PetType;
  created_at: string;
  photos: string | [string, string][];
}

function toPetRow(raw: RawPetRow): PetRow {
  // postgres.js and PGlite both decode json, but be tolerant of a driver that does not.
  const photos = typeof raw.photos === "string" ? JSON.parse(raw.photos) : raw.photos;
  return {
    id: raw.id,
    name: raw.name,
    age: Number(raw.age),
    type: raw.type,
    createdAt: raw.created_at,
    photos: (photos as [string, string][]).map(([id, fileName]) => ({ id, fileName })),
  };
}

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
     * One page, newest first, and the exact count of matching pets, in one round trip: the count
     * rides along as a column read from the counters. An empty page has no row to carry it, so
     * it is `undefined` then (ask `count`). LIMIT and OFFSET go in as literals (no parameters:
     * PostgreSQL plans for the actual numbers), and photos are aggregated only for the rows of the
     * page, never for the rows OFFSET skips.
     */
    async listPage(page: { limit: number; offset: number; hasPhotos: HasPhotosFilter }) {
      const photos = page.hasPhotos === false ? sql`'[]'::json` : photosOfP;
      const result = await db.execute(sql`
        select p.id, p.name, p.age, p.type, ${createdAtText(sql`p.created_at`)} as created_at,
          ${photos} as photos, (select ${countColumn(page.hasPhotos)} from ${petStats}) as total
        from (
          select ${pets.id}, ${pets.name}, ${pets.age}, ${pets.type}, ${pets.createdAt}
          from ${pets}
          where ${hasPhotosCondition(page.hasPhotos)}
          order by ${pets.createdAt} desc, ${pets.id} desc
          limit ${integerLiteral(page.limit)} offset ${integerLiteral(page.offset)}
        ) p
        order by p.created_at desc, p.id desc`);
      const raw = rows<RawPetRow & { total: string | number }>(result);
      return {
        pets: raw.map(toPetRow),
        total: raw[0] === undefined ? undefined : Number(raw[0].total),
      };
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

    /** Keyset pagination for the export: constant cost per batch however deep it goes. */
    async exportBatch(after: ExportCursor | undefined, limit: number, hasPhotos: HasPhotosFilter) {
      const afterCursor = after
        ? sql`(p.created_at, p.id) < (${after.createdAt}::timestamptz, ${after.id}::uuid)`
        : sql`true`;
      const photos = hasPhotos === false ? sql`'[]'::json` : photosOfP;
      const result = await db.execute(sql`
        select p.id, p.name, p.age, p.type, ${createdAtText(sql`p.created_at`)} as created_at,
          to_char(p.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as cursor,
          ${photos} as photos
        from ${pets} p
        where ${hasPhotosCondition(hasPhotos)} and ${afterCursor}
        order by p.created_at desc, p.id desc
        limit ${integerLiteral(limit)}`);
      const raw = rows<RawPetRow & { cursor: string }>(result);
      const last = raw.at(-1);
      return {
        pets: raw.map(toPetRow),
        next: last ? { createdAt: last.cursor, id: last.id } : undefined,
      };
    },
  };
}

export type PetsRepository = ReturnType<typeof createPetsRepository>;
