import { sql } from "drizzle-orm";
import { bigserial, index, jsonb, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import type { BookEvent } from "./events.ts";

/**
 * The transactional outbox: each book change writes its event here in the same transaction,
 * and the relay publishes pending rows in `id` order, then stamps `published_at`.
 */
export const outbox = pgTable(
  "outbox",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    eventId: uuid("event_id").notNull().unique(),
    /** The book id: events of one aggregate are published in order, never overtaking. */
    aggregateId: uuid("aggregate_id").notNull(),
    type: text("type").notNull(),
    payload: jsonb("payload").$type<BookEvent>().notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
    publishedAt: timestamp("published_at", { withTimezone: true, precision: 6 }),
  },
  (t) => [
    index("outbox_pending_idx").on(t.id).where(sql`${t.publishedAt} is null`),
    index("outbox_pending_aggregate_idx")
      .on(t.aggregateId, t.id)
      .where(sql`${t.publishedAt} is null`),
    index("outbox_published_at_idx").on(t.publishedAt).where(sql`${t.publishedAt} is not null`),
  ],
);
