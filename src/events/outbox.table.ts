import { sql } from "drizzle-orm";
import { bigserial, index, json, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import type { BookEvent } from "./events.ts";

/**
 * The transactional outbox: each book change writes its event here in the same transaction,
 * and the relay publishes pending rows in `id` order, then stamps `published_at`.
 *
 * Every write pays for each index here, so there are only two: the primary key, and the pending
 * rows in order (which the relay also uses to keep one book's events in order). The payload is
 * `json`, stored as written: nothing queries inside it, and `jsonb` would parse it on insert.
 */
export const outbox = pgTable(
  "outbox",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    eventId: uuid("event_id").notNull(),
    /** The book id: events of one aggregate are published in order, never overtaking. */
    aggregateId: uuid("aggregate_id").notNull(),
    type: text("type").notNull(),
    payload: json("payload").$type<BookEvent>().notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
    publishedAt: timestamp("published_at", { withTimezone: true, precision: 6 }),
  },
  (t) => [index("outbox_pending_idx").on(t.id).where(sql`${t.publishedAt} is null`)],
);
