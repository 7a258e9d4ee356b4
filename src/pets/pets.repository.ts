/** All SQL for pets and their photos. */
import { eq, inArray, type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { copyClient, copyOut } from "../db/copy-out.ts";
import { type JsonText, jsonString, listAnswerJson } from "../db/json-text.ts";
import { preparedOnce, renderedOnce, renderSql } from "../db/prepared.ts";
import { rows } from "../db/rows.ts";
import { integerLiteral, textLiteral } from "../db/sql.ts";
import { textQuery } from "../db/text-query.ts";
import { utcSecondsText } from "../db/timestamps.ts";
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

export interface NewPhotoRow {
  id: string;
  petId: string;
  fileName: string;
  contentType: string;
  sizeBytes: number;
}

/** Unqualified on purpose: for `pets` in the page's subqueries and the export; empty: no filter. */
const hasPhotosWhere = (hasPhotos: HasPhotosFilter) =>
  hasPhotos === undefined
    ? sql``
    : hasPhotos
      ? sql`where photo_count > 0`
      : sql`where photo_count = 0`;

/** The count that matches a filter, summed over the pet_stats shards. */
const countColumn = (hasPhotos: HasPhotosFilter) =>
  hasPhotos === undefined
    ? sql`sum(total)`
    : hasPhotos
      ? sql`sum(with_photos)`
      : sql`sum(total - with_photos)`;

/*
 * GET /pets' answer is written by PostgreSQL as the text that goes out (see db/json-text.ts):
 * decoding the page and encoding it again (JSON.parse, the objects, JSON.stringify) was about a
 * fifth of the server's CPU on a page of 20 pets. pets.repository.test.ts compares the bytes
 * with JSON.stringify's.
 */

/** The photos of the pet aliased `p`, oldest first, as the elements of a JSON array. */
const photosOfP = (photoUrlBase: string) => sql`coalesce((
  select string_agg(
    '{"id":"' || ph.id || '","url":' || ${jsonString(sql`${textLiteral(photoUrlBase)} || ph.file_name`)} || '}',
    ',' order by ph.created_at, ph.id)
  from ${petPhotos} ph where ph.pet_id = p.id), '')`;

/**
 * Most pets have no photo: the trigger-kept photo_count spares them the lookup in pet_photos.
 */
const photosOfPage = (hasPhotos: HasPhotosFilter, photoUrlBase: string) => {
  if (hasPhotos === false) return sql`''`;
  if (hasPhotos === true) return photosOfP(photoUrlBase);
  return sql`case when p.photo_count > 0 then ${photosOfP(photoUrlBase)} else '' end`;
};

/** The pet aliased `p` as GET /pets shows it: its stored JSON pieces around its photos. */
const petJson = (hasPhotos: HasPhotosFilter, photoUrlBase: string) =>
  sql`p.json_head || '[' || ${photosOfPage(hasPhotos, photoUrlBase)} || ']' || p.json_tail`;

/** What the page subquery selects from `pets`, as `p`. */
const pageColumns = sql`${pets.id}, ${pets.createdAt}, ${pets.photoCount}, ${pets.jsonHead}, ${pets.jsonTail}`;

/**
 * GET /pets' whole answer in one statement: `{"count":…,"items":[…]}`, the page and the exact
 * count (read from the counters), photo URLs made from `photoUrlBase`, a literal (fixed once the
 * server listens). LIMIT and OFFSET go in as literals too, so PostgreSQL plans for the actual
 * numbers: as parameters of a prepared statement its generic plan sorts the whole table for every
 * page (measured: 65 ms instead of 1 ms for a first page). Photos are looked up only for the rows
 * of the page, never for the rows OFFSET skips.
 *
 * A later page skips its OFFSET in the newest-first index alone (an index-only scan: it holds
 * `photo_count` too, for the filters) and reads only its own rows from the table: walked through
 * the table, every skipped row was a heap fetch. Measured at offset 50,000 of 100,000 pets: 5.4
 * instead of 13.5 ms on PGlite, 9.2 instead of 11 to 16 ms on PostgreSQL; at offsets up to 100
 * the same as before. A first page reads its rows straight from the index scan, as before.
 */
export function listPageQuery(
  page: { limit: number; offset: number; hasPhotos: HasPhotosFilter },
  photoUrlBase: string,
) {
  const where = hasPhotosWhere(page.hasPhotos);
  return sql`
    select ${listAnswerJson(
      sql`(select coalesce(${countColumn(page.hasPhotos)}, 0) from ${petStats})`,
      petJson(page.hasPhotos, photoUrlBase),
      sql`p.created_at desc, p.id desc`,
    )} as body
    from (${page.offset === 0 ? firstPage(page.limit, where) : laterPage(page, where)}) p`;
}

const newestFirst = sql`order by ${pets.createdAt} desc, ${pets.id} desc`;

function firstPage(limit: number, where: SQL) {
  return sql`select ${pageColumns} from ${pets} ${where}
    ${newestFirst} limit ${integerLiteral(limit)} offset 0`;
}

function laterPage(page: { limit: number; offset: number }, where: SQL) {
  return sql`select ${pageColumns} from ${pets} join (
      select ${pets.id} from ${pets} ${where}
      ${newestFirst} limit ${integerLiteral(page.limit)} offset ${integerLiteral(page.offset)}
    ) page using (id)`;
}

/**
 * The export: one row per matching pet, newest first, already the export's JSON text,
 * `{"id","name","age","type","photos","created_at"}` (the pet's stored JSON pieces around its
 * photos), `photos` the photos' URLs (`photoUrlBase` and the file name), oldest first. With the
 * JSON made here, not parsed and made again in this process, the export costs little more than
 * PostgreSQL's own `COPY` of it (bench/scenarios/export.ts). The pets come in the newest-first
 * index's order, and only those with photos (photo_count) look theirs up: rows stream from the
 * first one, with PostgreSQL's memory flat. A join with the photos grouped by pet sorts every pet
 * before the first; with the stored pieces it is faster in all, but only with a large work_mem
 * (1M pets, psql COPY to /dev/null, 2026-12-03 15:19 report: 2.9 to 4.1 s with 256 MB against
 * 3.3 to 5.2 s in index order). No parameters: the statement goes into a COPY.
 */
export function exportJsonQuery(hasPhotos: HasPhotosFilter, photoUrlBase: string) {
  const urls = sql`coalesce((
    select string_agg(${jsonString(sql`${textLiteral(photoUrlBase)} || ph.file_name`)}, ',' order by ph.created_at, ph.id)
    from ${petPhotos} ph where ph.pet_id = p.id), '')`;
  const photos =
    hasPhotos === false ? sql`''` : sql`case when p.photo_count = 0 then '' else ${urls} end`;
  return sql`
    select p.json_head || '[' || ${photos} || ']' || p.json_tail as pet
    from ${pets} p ${hasPhotosWhere(hasPhotos)}
    order by p.created_at desc, p.id desc`;
}

/** Pets of the export: their JSON objects joined by commas (UTF-8 bytes or text). */
export interface ExportBatch {
  json: Uint8Array | string;
  count: number;
}

/**
 * What the export runs first, in its transaction. A read-only transaction: the export is one
 * snapshot. Reading waits for PostgreSQL as long as it takes on a busy server, longer than
 * DATABASE_TIMEOUT_MS allows a request's statement: an export is no request. The planner counts a
 * photo lookup for every pet (it cannot know most have none), which takes it past JIT's
 * optimise-and-inline thresholds; measured with JIT off.
 */
const EXPORT_SETUP = [
  "set transaction read only",
  "set local statement_timeout = 0",
  "set local jit = off",
];

/**
 * `query`'s single `pet` column in chunks of up to `chunk` rows, through one cursor in a
 * transaction that runs EXPORT_SETUP first, kept a chunk ahead of the consumer.
 */
async function* cursorRows(db: Db, query: SQL, chunk: number): AsyncGenerator<string[]> {
  const ready: (string[] | null)[] = [];
  let failure: unknown;
  let stopped = false;
  let wakeConsumer = () => {};
  let wakeReader = () => {};
  const fetchChunk = sql`fetch ${integerLiteral(chunk)} from pets_export`;
  const reading = db
    .transaction(async (tx) => {
      for (const statement of EXPORT_SETUP) await tx.execute(sql.raw(statement));
      await tx.execute(sql`declare pets_export no scroll cursor for ${query}`);
      while (!stopped) {
        const found = rows<{ pet: string }>(await tx.execute(fetchChunk));
        ready.push(found.length > 0 ? found.map((r) => r.pet) : null);
        wakeConsumer();
        if (found.length < chunk) {
          if (found.length > 0) ready.push(null);
          return;
        }
        if (ready.length > 1) await new Promise<void>((wake) => (wakeReader = wake));
      }
    })
    .catch((err: unknown) => {
      failure = err;
      wakeConsumer();
    });
  try {
    for (;;) {
      if (ready.length === 0 && failure === undefined) {
        await new Promise<void>((wake) => (wakeConsumer = wake));
      }
      if (ready.length === 0) throw failure;
      const next = ready.shift() as string[] | null;
      wakeReader();
      if (next === null) return;
      yield next;
    }
  } finally {
    stopped = true;
    wakeReader();
    await reading;
  }
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
        createdAt: utcSecondsText(pets.createdAt),
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

  const pageStatement = renderedOnce();
  const run = textQuery(db);
  const copier = copyClient(db);
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
     * One page, newest first, and the exact count of matching pets, in one round trip: the JSON
     * text of GET /pets' answer (see listPageQuery), photo URLs made from `photoUrlBase`.
     */
    async listJson(
      page: { limit: number; offset: number; hasPhotos: HasPhotosFilter },
      photoUrlBase: string,
    ): Promise<JsonText> {
      const key = `${page.hasPhotos}:${page.limit}:${page.offset}:${photoUrlBase}`;
      const statement = pageStatement(key, () => listPageQuery(page, photoUrlBase));
      const body = await run.value(statement, { reuse: page.offset === 0 });
      if (body === undefined) throw new Error("the page statement answered no row");
      return body;
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
     * Deletes the pets and their photo rows and returns what went, so the caller can remove the
     * files after commit. Run it in a transaction (the service's unit of work): the pets are
     * locked first, so a photo upload racing with the delete either finishes before it (and its
     * file is returned here) or fails.
     */
    async deleteMany(ids: string[]): Promise<{ deletedIds: string[]; fileNames: string[] }> {
      if (ids.length === 0) return { deletedIds: [], fileNames: [] };
      await db.select({ id: pets.id }).from(pets).where(inArray(pets.id, ids)).for("update");
      const photos = await db
        .delete(petPhotos)
        .where(inArray(petPhotos.petId, ids))
        .returning({ fileName: petPhotos.fileName });
      const deleted = await db.delete(pets).where(inArray(pets.id, ids)).returning({ id: pets.id });
      return { deletedIds: deleted.map((r) => r.id), fileNames: photos.map((p) => p.fileName) };
    },

    /**
     * The export's JSON (see exportJsonQuery) in batches of about `chunk` pets, read in one
     * read-only transaction (one snapshot): on PostgreSQL as a COPY streamed straight into the
     * batches (db/copy-out.ts), elsewhere (PGlite) through a cursor kept a batch ahead of the
     * consumer. Stopping early (return or throw in the loop) ends the read and its transaction.
     */
    async *exportJson(
      hasPhotos: HasPhotosFilter,
      photoUrlBase: string,
      chunk: number,
    ): AsyncGenerator<ExportBatch> {
      const query = exportJsonQuery(hasPhotos, photoUrlBase);
      if (copier) {
        for await (const batch of copyOut(copier, EXPORT_SETUP, renderSql(query), chunk)) {
          yield { json: batch.bytes, count: batch.rows };
        }
        return;
      }
      for await (const pets of cursorRows(db, query, chunk))
        yield { json: pets.join(","), count: pets.length };
    },
  };
}

export type PetsRepository = ReturnType<typeof createPetsRepository>;
