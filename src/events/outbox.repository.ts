/** All SQL for the transactional outbox. */
import { isNull, sql } from "drizzle-orm";
import type { PgInsertValue } from "drizzle-orm/pg-core";
import type { Db } from "../db/client.ts";
import { rows } from "../db/rows.ts";
import { integerLiteral } from "../db/sql.ts";
import { traceparentNow } from "../observability/event-traces.ts";
import type { BookEventJson } from "./events.ts";
import { outbox } from "./outbox.table.ts";

export interface PendingEvent {
  id: number;
  aggregateId: string;
  /** The event's JSON form, as the version that wrote the row stored it (unchecked). */
  payload: unknown;
  /** The writer's W3C trace context when tracing was on (observability/event-traces.ts). */
  traceparent?: string | null;
}

/** An event's row; the payload is its JSON form (events.ts says why). */
const outboxRow = (event: BookEventJson) => ({
  eventId: event.id,
  aggregateId: event.book.id,
  type: event.type,
  payload: event,
  traceparent: traceparentNow(),
});

/**
 * An event's insert as a common table expression, so that the change it describes can write it in
 * the same statement: one round trip, atomic without an explicit transaction. Takes the row's
 * values (or placeholders for a prepared statement).
 */
export function appendingEvent(db: Db, row: PgInsertValue<typeof outbox>) {
  return db.$with("appended_event").as(db.insert(outbox).values(row));
}

/** Where a feature's writes record their events: in its unit of work, next to the change. */
export interface OutboxWriter {
  /** The events in one statement, in the caller's transaction. */
  append(events: BookEventJson[]): Promise<void>;
}

export function createOutboxWriter(db: Db): OutboxWriter {
  return {
    async append(events) {
      if (events.length > 0) await db.insert(outbox).values(events.map(outboxRow));
    },
  };
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
  const claimed = rows<{
    id: number | string;
    aggregate_id: string;
    payload: unknown;
    traceparent: string | null;
  }>(
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
      returning ${outbox.id} as id, ${outbox.aggregateId} as aggregate_id, ${outbox.payload} as payload,
        ${outbox.traceparent} as traceparent`),
  );
  return claimed
    .map((e) => ({
      id: Number(e.id),
      aggregateId: e.aggregate_id,
      payload: e.payload,
      traceparent: e.traceparent,
    }))
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

/**
 * Where an event stands in publication order (WatchBooks resumes after it): its row, and when
 * its batch was published (as text: microseconds, which a Date would lose), null while pending.
 */
export interface OutboxPosition {
  id: number;
  /** The book's id. */
  aggregateId: string;
  publishedAt: string | null;
}

/** The position of the event with this id, while its row is retained. */
export async function findPosition(db: Db, eventId: string): Promise<OutboxPosition | undefined> {
  const [row] = rows<{ id: number | string; aggregate_id: string; published_at: string | null }>(
    await db.execute(sql`
      select ${outbox.id} as id, ${outbox.aggregateId} as aggregate_id,
        ${outbox.publishedAt}::text as published_at
      from ${outbox} where ${outbox.eventId} = ${eventId}::uuid limit 1`),
  );
  return row
    ? { id: Number(row.id), aggregateId: row.aggregate_id, publishedAt: row.published_at }
    : undefined;
}

/** When the oldest retained row was written; undefined for an empty outbox. */
export async function oldestRetainedAt(db: Db): Promise<Date | undefined> {
  const [row] = rows<{ created_at: string | Date }>(
    await db.execute(sql`
      select ${outbox.createdAt} as created_at from ${outbox} order by ${outbox.id} limit 1`),
  );
  return row ? new Date(row.created_at) : undefined;
}

/**
 * The events after `from` in publication order, at most `limit`, in one statement (one snapshot,
 * so a row published meanwhile is in one part or the other, never both or neither): first the
 * rows published after it, by (published_at, id), which is the order relays published them in;
 * then the pending ones, by id (committed, about to be published: a client may see them before
 * the live feed does). For a pending `from`, the pending rows after it. Only `bookIds`' events
 * when given. Payloads are the rows' JSON forms.
 *
 * `wholeBatch`: also the events of other books published in the same relay transaction as
 * `from`, before it. Through Kafka a batch's events reach a stream partition by partition, so a
 * client may have seen `from` without them; they may come twice, but none goes missing. Events
 * of `from`'s own book share its partition: those up to `from` were seen, and are left out.
 */
export async function eventsAfter(
  db: Db,
  from: OutboxPosition,
  options: { bookIds?: readonly string[] | undefined; limit: number; wholeBatch?: boolean },
): Promise<unknown[]> {
  const limit = integerLiteral(options.limit);
  const after = options.wholeBatch
    ? sql`(published_at, id) >= (${from.publishedAt}::timestamptz, 0)
        and not (published_at = ${from.publishedAt}::timestamptz
          and aggregate_id = ${from.aggregateId}::uuid and id <= ${from.id}::bigint)`
    : sql`(published_at, id) > (${from.publishedAt}::timestamptz, ${from.id}::bigint)`;
  const books =
    options.bookIds && options.bookIds.length > 0
      ? sql`and aggregate_id in (${sql.join(
          options.bookIds.map((id) => sql`${id}::uuid`),
          sql`, `,
        )})`
      : sql``;
  const published =
    from.publishedAt === null
      ? sql``
      : sql`(select 0 as part, id, published_at, payload from ${outbox}
          where published_at is not null
            and ${after} ${books}
          order by published_at, id limit ${limit})
        union all`;
  const pendingAfter = from.publishedAt === null ? sql`and id > ${from.id}::bigint` : sql``;
  const found = rows<{ payload: unknown }>(
    await db.execute(sql`
      select payload from (
        ${published}
        (select 1 as part, id, published_at, payload from ${outbox}
          where published_at is null ${pendingAfter} ${books}
          order by id limit ${limit})
      ) r order by part, published_at, id limit ${limit}`),
  );
  return found.map((r) => r.payload);
}

/** The retained events, as WatchBooks reads them to resume (grpc/book-watch.ts). */
export function outboxReplay(db: Db) {
  return {
    findPosition: (eventId: string) => findPosition(db, eventId),
    eventsAfter: (
      from: OutboxPosition,
      options: { bookIds?: readonly string[] | undefined; limit: number; wholeBatch?: boolean },
    ) => eventsAfter(db, from, options),
    oldestRetainedAt: () => oldestRetainedAt(db),
  };
}
