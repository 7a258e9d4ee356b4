import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  index,
  integer,
  pgEnum,
  pgTable,
  smallint,
  text,
  timestamp,
  uuid,
  varchar,
} from "drizzle-orm/pg-core";

export const petType = pgEnum("pet_type", ["dog", "cat"]);

export const pets = pgTable(
  "pets",
  {
    id: uuid("id").primaryKey(),
    name: varchar("name", { length: 100 }).notNull(),
    age: smallint("age").notNull(),
    type: petType("type").notNull(),
    /** Maintained by a trigger on pet_photos (drizzle/0001_pet_counters.sql). */
    photoCount: integer("photo_count").notNull().default(0),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
    /**
     * The pet's JSON as the API shows it, up to its photos (`{"id":…,"type":…,"photos":`) and
     * after them (`,"created_at":…}`), written once with the row by PostgreSQL
     * (drizzle/0013_pets_json_pieces.sql) instead of for every page and export that shows it.
     */
    jsonHead: text("json_head")
      .notNull()
      .generatedAlwaysAs(sql`pet_json_head("id", "name", "age", "type")`),
    jsonTail: text("json_tail").notNull().generatedAlwaysAs(sql`pet_json_tail("created_at")`),
  },
  (t) => [
    // NULLS FIRST is what a plain `order by … desc` means: only then can the list use the index.
    // photo_count too, so that has_photos is checked in the index and a later page skips its
    // OFFSET in the index alone (pets.repository.ts, listPageQuery).
    index("pets_newest_first_idx").on(
      t.createdAt.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
      t.photoCount,
    ),
    check("pets_age_range", sql`${t.age} between 0 and 50`),
    check("pets_photo_count_not_negative", sql`${t.photoCount} >= 0`),
  ],
);

export const petPhotos = pgTable(
  "pet_photos",
  {
    id: uuid("id").primaryKey(),
    petId: uuid("pet_id")
      .notNull()
      .references(() => pets.id, { onDelete: "cascade" }),
    fileName: text("file_name").notNull().unique(),
    contentType: text("content_type").notNull(),
    sizeBytes: integer("size_bytes").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
  },
  // file_name in the index too, so that a page's photo lookups are index-only scans in the
  // photos' order, not a bitmap scan of the table and a sort (pgbench, first page with photos:
  // 1.2x the pages per second). On PGlite each bitmap scan also costs a file-system call.
  (t) => [index("pet_photos_pet_id_idx").on(t.petId, t.createdAt, t.id, t.fileName)],
);

/**
 * Exact counters, kept by triggers in the same transaction as every pet and photo write, so
 * `GET /pets` can answer `count` without scanning the table. 16 shards: each database connection
 * adds to its own row (drizzle/0006), so concurrent writes do not queue for one row lock until
 * they commit. The counts are the sums of the rows.
 */
export const petStats = pgTable(
  "pet_stats",
  {
    id: smallint("id").primaryKey(),
    total: bigint("total", { mode: "number" }).notNull(),
    withPhotos: bigint("with_photos", { mode: "number" }).notNull(),
  },
  (t) => [check("pet_stats_shard", sql`${t.id} between 1 and 16`)],
);
