import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  index,
  json,
  pgSequence,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import type { BookEventJson } from "./events.ts";

/**
 * Where `outbox.published_seq` comes from. Only a relay holding the publication lock draws from it
 * (outbox.repository.ts `claimBatch`), so its values are handed out in commit order.
 */
export const outboxPublishedSeq = pgSequence("outbox_published_seq");

/**
 * The transactional outbox: each book change writes its event here in the same transaction,
 * and the relay publishes pending rows in `id` order, then stamps `published_at`.
 *
 * Every write pays for each index here, so there are few: the primary key; the pending rows in
 * order (which the relay also uses to keep one book's events in order); and for WatchBooks'
 * resume (published rows stay for OUTBOX_RETENTION_HOURS), the event id, to find where a client
 * left off, and the published rows in publication order, to replay what came after it. The
 * latter is partial, so an insert skips it; the relay's update adds the entry.
 *
 * `published_seq` is the canonical order of publication: the relay numbers what it publishes in
 * the transaction that marks it published, one relay at a time, so the numbers grow in commit
 * order (gaps only where a transaction rolled back). WatchBooks' live feed tails it and resumes
 * by it. Rows published by an older relay without numbering ("stragglers") are numbered by the
 * next relay that runs; their own partial index finds them. The payload is
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
    /** Position in publication order (outbox_published_seq); null while pending. */
    publishedSeq: bigint("published_seq", { mode: "number" }),
  },
  (t) => [
    index("outbox_pending_idx").on(t.id).where(sql`${t.publishedAt} is null`),
    index("outbox_event_id_idx").on(t.eventId),
    index("outbox_published_idx").on(t.publishedAt, t.id).where(sql`${t.publishedAt} is not null`),
    uniqueIndex("outbox_published_seq_idx")
      .on(t.publishedSeq)
      .where(sql`${t.publishedSeq} is not null`),
    index("outbox_unsequenced_idx")
      .on(t.publishedAt, t.id)
      .where(sql`${t.publishedAt} is not null and ${t.publishedSeq} is null`),
  ],
);
