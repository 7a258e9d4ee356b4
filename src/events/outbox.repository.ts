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
 * The key of the transaction-level advisory lock that lets one relay at a time number what it
 * publishes (`claimBatch`). A fixed, arbitrary bigint; nothing else in the database takes it.
 */
export const PUBLICATION_LOCK_KEY = 7_317_690_451_003_221n;

/** What `claimBatch` answers while another relay holds the publication lock. */
export const LOCKED_OUT = "locked out";

/**
 * Claims the next batch, in the caller's transaction, which commits only after the events were
 * published: their marks count only then.
 *
 * First the publication lock, without waiting (`pg_try_advisory_xact_lock`): when another relay
 * holds it, nothing is claimed (the caller idles as for an empty outbox; no connection ever waits
 * on the lock). Holding it until commit, this relay alone draws from `outbox_published_seq`, and
 * PostgreSQL makes a commit visible before it releases the transaction's locks, so the next
 * holder's numbers are larger and its commit comes later: `published_seq` order is commit order,
 * and a reader that sees a number sees every smaller one that will ever commit.
 *
 * Then one statement: locks up to `limit` pending events, oldest first, skipping rows other
 * transactions hold; leaves out every event whose book has an older pending event outside the
 * batch, so one book's events are never published out of order; marks the rest published and
 * numbers them in `id` order. Rows an older version's relay published without numbers
 * (stragglers of a rolling upgrade) are numbered first, in (published_at, id) order, and not
 * returned. The numbers are paired with the rows by rank (the k-th smallest number to the k-th
 * row), so their order does not hang on the order `nextval` happens to be evaluated in.
 */
export async function claimBatch(
  tx: Db,
  limit: number,
): Promise<PendingEvent[] | typeof LOCKED_OUT> {
  // A plain index scan of the pending rows, never a bitmap scan: it marks the index entries of
  // rows published since the last vacuum as dead the first time it meets them, so later claims
  // skip them. A bitmap scan marks nothing, and would revisit every one of them each time.
  const [lock] = rows<{ locked: boolean }>(
    await tx.execute(
      sql`select pg_try_advisory_xact_lock(${sql.raw(`${PUBLICATION_LOCK_KEY}`)}::bigint) as locked,
        set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)`,
    ),
  );
  if (!lock?.locked) return LOCKED_OUT;
  const claimed = rows<{
    id: number | string;
    aggregate_id: string;
    payload: unknown;
    traceparent: string | null;
    claimed: boolean;
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
      ), stragglers as (
        select ${outbox.id} as id, ${outbox.publishedAt} as published_at
        from ${outbox}
        where ${outbox.publishedAt} is not null and ${outbox.publishedSeq} is null
        order by ${outbox.publishedAt}, ${outbox.id}
        limit ${integerLiteral(limit)}
      ), ranked as (
        select id, claimed, row_number() over (order by claimed, published_at, id) as rank
        from (
          select id, false as claimed, published_at from stragglers
          union all
          select id, true as claimed, null::timestamptz as published_at from publishable
        ) r
      ), numbers as (
        select seq, row_number() over (order by seq) as rank
        from (select nextval('outbox_published_seq') as seq from ranked) n
      )
      update ${outbox} set
        published_at = case when ranked.claimed then now() else ${outbox.publishedAt} end,
        published_seq = numbers.seq
      from ranked join numbers using (rank)
      where ${outbox.id} = ranked.id
      returning ${outbox.id} as id, ${outbox.aggregateId} as aggregate_id, ${outbox.payload} as payload,
        ${outbox.traceparent} as traceparent, ranked.claimed as claimed`),
  );
  return claimed
    .filter((e) => e.claimed)
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
 * Where a client that saw an event resumes: after `seq` in publication order (`published_seq`),
 * leaving out the events in `skip` when they come.
 *
 * For a numbered event, its own number. An event that exists but has no number yet (pending, or
 * published by an older relay and not numbered yet) was never delivered in publication order; a
 * client has it only from an older version (its replay of pending rows, or Kafka before the
 * relay committed). It will be numbered after every event numbered now, and its book's earlier
 * events were delivered before it (per-book order holds in every version). So the client resumes
 * after the largest number now, and the unnumbered events of its book up to it (it included) are
 * left out when they come: nothing numbered later is skipped, and none of those comes twice.
 * Read in one statement, one snapshot, so no number is given out between the two reads.
 */
export interface ResumePoint {
  seq: number;
  skip: string[];
}

/** Where to resume after the event with this id, while its row is retained. */
export async function findResumePoint(db: Db, eventId: string): Promise<ResumePoint | undefined> {
  const [row] = rows<{ seq: number | string | null; skip: string[] | null }>(
    await db.execute(sql`
      with target as (
        select ${outbox.id} as id, ${outbox.aggregateId} as aggregate_id,
          ${outbox.publishedSeq} as seq
        from ${outbox} where ${outbox.eventId} = ${eventId}::uuid
        order by ${outbox.id} limit 1
      )
      select
        coalesce(t.seq, (select max(${outbox.publishedSeq}) from ${outbox}), 0) as seq,
        case when t.seq is null then array(
          select ${outbox.eventId}::text from ${outbox}
          where ${outbox.aggregateId} = t.aggregate_id and ${outbox.id} <= t.id
            and ${outbox.publishedSeq} is null
          order by ${outbox.id}) end as skip
      from target t`),
  );
  return row ? { seq: Number(row.seq), skip: row.skip ?? [] } : undefined;
}

/** The largest `published_seq` given out and committed; 0 before the first. */
export async function maxPublishedSeq(db: Db): Promise<number> {
  const [row] = rows<{ seq: number | string | null }>(
    await db.execute(sql`select max(${outbox.publishedSeq}) as seq from ${outbox}`),
  );
  return Number(row?.seq ?? 0);
}

/** When the oldest retained row was written; undefined for an empty outbox. */
export async function oldestRetainedAt(db: Db): Promise<Date | undefined> {
  const [row] = rows<{ created_at: string | Date }>(
    await db.execute(sql`
      select ${outbox.createdAt} as created_at from ${outbox} order by ${outbox.id} limit 1`),
  );
  return row ? new Date(row.created_at) : undefined;
}

/** A published event in publication order; the payload is its row's JSON form (unchecked). */
export interface SequencedEvent {
  seq: number;
  eventId: string;
  payload: unknown;
}

/**
 * The published events numbered after `afterSeq`, in number order, at most `limit`; only
 * `bookIds`' events when given. Pending rows are not among them: they have no place in
 * publication order yet, and come once numbered. Read through the unique index on the numbers.
 */
export async function eventsAfterSeq(
  db: Db,
  afterSeq: number,
  options: { bookIds?: readonly string[] | undefined; limit: number },
): Promise<SequencedEvent[]> {
  const books =
    options.bookIds && options.bookIds.length > 0
      ? sql`and ${outbox.aggregateId} in (${sql.join(
          options.bookIds.map((id) => sql`${id}::uuid`),
          sql`, `,
        )})`
      : sql``;
  const found = rows<{ seq: number | string; event_id: string; payload: unknown }>(
    await db.execute(sql`
      select ${outbox.publishedSeq} as seq, ${outbox.eventId}::text as event_id,
        ${outbox.payload} as payload
      from ${outbox}
      where ${outbox.publishedSeq} > ${integerLiteral(afterSeq)} ${books}
      order by ${outbox.publishedSeq}
      limit ${integerLiteral(options.limit)}`),
  );
  return found.map((r) => ({ seq: Number(r.seq), eventId: r.event_id, payload: r.payload }));
}

/** The retained events, as WatchBooks reads them to resume (grpc/book-watch.ts). */
export function outboxReplay(db: Db) {
  return {
    findResumePoint: (eventId: string) => findResumePoint(db, eventId),
    eventsAfter: (
      afterSeq: number,
      options: { bookIds?: readonly string[] | undefined; limit: number },
    ) => eventsAfterSeq(db, afterSeq, options),
    oldestRetainedAt: () => oldestRetainedAt(db),
  };
}
