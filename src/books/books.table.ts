import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  date,
  index,
  pgTable,
  smallint,
  timestamp,
  uuid,
  varchar,
} from "drizzle-orm/pg-core";

export const books = pgTable(
  "books",
  {
    id: uuid("id").primaryKey(),
    title: varchar("title", { length: 300 }).notNull(),
    author: varchar("author", { length: 200 }).notNull(),
    publishedOn: date("published_on", { mode: "string" }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
  },
  (t) => [
    // NULLS FIRST is what a plain `order by … desc` means: only then can the list use the index.
    index("books_newest_first_idx").on(t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
    index("books_author_newest_first_idx").on(
      t.author,
      t.createdAt.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
  ],
);

/**
 * Exact counters kept by triggers (drizzle/0003_book_counters.sql), in 16 shards: each database
 * connection adds to its own row (drizzle/0006), so concurrent writes do not queue for one row
 * lock until they commit. The count is the sum of the rows.
 */
export const bookStats = pgTable(
  "book_stats",
  {
    id: smallint("id").primaryKey(),
    total: bigint("total", { mode: "number" }).notNull(),
  },
  (t) => [check("book_stats_shard", sql`${t.id} between 1 and 16`)],
);
