import { sql } from "drizzle-orm";
import { bigserial, index, json, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import type { BookEventJson } from "./events.ts";

/**
 * The transactional outbox: each book change writes its event here in the same transaction,
 * and the relay publishes pending rows in `id` order, then stamps `published_at`.
 *
 * Every write pays for each index here, so there are few: the primary key; the pending rows in
 * order (which the relay also uses to keep one book's events in order); and for WatchBooks'
 * resume (published rows stay for OUTBOX_RETENTION_HOURS), the event id, to find where a client
 * left off, and the published rows in publication order, to replay what came after it. The
 * latter is partial, so an insert skips it; the relay's update adds the entry. The payload is
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
    payload: json("payload").$type<BookEventJson>().notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
    publishedAt: timestamp("published_at", { withTimezone: true, precision: 6 }),
    /** W3C trace context of the write, when tracing is on: the relay sends it with the event. */
    traceparent: text("traceparent"),
  },
  (t) => [
    index("outbox_pending_idx").on(t.id).where(sql`${t.publishedAt} is null`),
    index("outbox_event_id_idx").on(t.eventId),
    index("outbox_published_idx").on(t.publishedAt, t.id).where(sql`${t.publishedAt} is not null`),
  ],
);
