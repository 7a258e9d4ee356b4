/** All SQL for the transactional outbox. */
import { isNull, sql } from "drizzle-orm";
import type { PgInsertValue } from "drizzle-orm/pg-core";
import type { Db } from "../db/client.ts";
import { rows } from "../db/rows.ts";
import { integerLiteral } from "../db/sql.ts";
import type { BookEvent } from "./events.ts";
import { outbox } from "./outbox.table.ts";

export interface PendingEvent {
  id: number;
  aggregateId: string;
  payload: BookEvent;
}

const outboxRow = (event: BookEvent) => ({
  eventId: event.id,
  aggregateId: event.book.id,
  type: event.type,
  payload: event,
});

/** Runs inside the caller's transaction, next to the change the event describes. */
export async function appendEvent(tx: Db, event: BookEvent): Promise<void> {
  await tx.insert(outbox).values(outboxRow(event));
}

/**
 * An event's insert as a common table expression, so that the change it describes can write it in
 * the same statement: one round trip, atomic without an explicit transaction. Takes the row's
 * values (or placeholders for a prepared statement).
 */
export function appendingEvent(db: Db, row: PgInsertValue<typeof outbox>) {
  return db.$with("appended_event").as(db.insert(outbox).values(row));
}

/** Many events in one statement, in the caller's transaction (bulk writes). */
export async function appendEvents(tx: Db, events: BookEvent[]): Promise<void> {
  if (events.length > 0) await tx.insert(outbox).values(events.map(outboxRow));
}

/**
 * Claims the next batch in one statement: locks up to `limit` pending events, oldest first,
 * skipping rows other relays hold; leaves out every event whose book has an older pending event
 * outside the batch (held by another relay), so one book's events are never published out of
 * order whatever the number of relays; and marks the rest published, in `id` order. The marks
 * count only if the caller's transaction commits, that is after the events were published.
 */
export async function claimBatch(tx: Db, limit: number): Promise<PendingEvent[]> {
  // A plain index scan of the pending rows, never a bitmap scan: it marks the index entries of
  // rows published since the last vacuum as dead the first time it meets them, so later claims
  // skip them. A bitmap scan marks nothing, and would revisit every one of them each time.
  await tx.execute(
    sql`select set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)`,
  );
  const claimed = rows<{ id: number | string; aggregate_id: string; payload: BookEvent }>(
    await tx.execute(sql`
      with batch as (
        select ${outbox.id} as id, ${outbox.aggregateId} as aggregate_id
        from ${outbox}
        where ${outbox.publishedAt} is null
        order by ${outbox.id}
        limit ${integerLiteral(limit)}
        for update skip locked
      ), publishable as (
        select b.id from batch b
        where not exists (
          select 1 from ${outbox} earlier
          where earlier.aggregate_id = b.aggregate_id
            and earlier.published_at is null
            and earlier.id < b.id
            and earlier.id not in (select id from batch))
      )
      update ${outbox} set published_at = now()
      from publishable where ${outbox.id} = publishable.id
      returning ${outbox.id} as id, ${outbox.aggregateId} as aggregate_id, ${outbox.payload} as payload`),
  );
  return claimed
    .map((e) => ({ id: Number(e.id), aggregateId: e.aggregate_id, payload: e.payload }))
    .sort((a, b) => a.id - b.id);
}

export async function countPending(db: Db): Promise<number> {
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(outbox)
    .where(isNull(outbox.publishedAt));
  return Number(row?.n ?? 0);
}

/**
 * How long the oldest unpublished event has waited, in seconds (both times from the database's
 * clock); null when nothing is pending. Reads one entry of the pending-rows index.
 */
export async function oldestPendingAgeSeconds(db: Db): Promise<number | null> {
  const [row] = rows<{ age: number | string }>(
    await db.execute(sql`
      select extract(epoch from now() - ${outbox.createdAt})::float8 as age
      from ${outbox} where ${outbox.publishedAt} is null
      order by ${outbox.id} limit 1`),
  );
  return row ? Math.max(0, Number(row.age)) : null;
}

/**
 * Deletes the events published before `cutoff` among the `window` oldest rows, and says how many
 * went. Ids grow with time, so the oldest rows lead the primary key: no index on `published_at` is
 * needed, and a table whose oldest rows are still recent costs one bounded scan.
 */
export async function deletePublishedBefore(
  db: Db,
  cutoff: Date,
  window = 10_000,
): Promise<number> {
  const deleted = await db.execute(sql`
    delete from ${outbox} where ${outbox.id} in (
      select id from (
        select ${outbox.id} as id, ${outbox.publishedAt} as published_at
        from ${outbox} order by ${outbox.id} limit ${integerLiteral(window)}
      ) oldest
      where published_at < ${cutoff.toISOString()}::timestamptz)
    returning ${outbox.id}`);
  return rows(deleted).length;
}
