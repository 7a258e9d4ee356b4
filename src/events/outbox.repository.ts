/** All SQL for the transactional outbox. */
import { and, asc, inArray, isNull, lt, notInArray, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
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

/** Many events in one statement, in the caller's transaction (bulk writes). */
export async function appendEvents(tx: Db, events: BookEvent[]): Promise<void> {
  if (events.length > 0) await tx.insert(outbox).values(events.map(outboxRow));
}

/**
 * Locks up to `limit` pending events, oldest first, skipping rows other relays hold. An event
 * whose book has an older pending event held by another relay is left out of this batch, so one
 * book's events are never published out of order, whatever the number of relays.
 */
export async function claimPending(tx: Db, limit: number): Promise<PendingEvent[]> {
  const claimed = await tx
    .select({ id: outbox.id, aggregateId: outbox.aggregateId, payload: outbox.payload })
    .from(outbox)
    .where(isNull(outbox.publishedAt))
    .orderBy(asc(outbox.id))
    .limit(limit)
    .for("update", { skipLocked: true });
  if (claimed.length === 0) return [];
  const claimedIds = claimed.map((e) => e.id);
  const blocked = await tx
    .selectDistinct({ aggregateId: outbox.aggregateId })
    .from(outbox)
    .where(
      and(
        isNull(outbox.publishedAt),
        inArray(outbox.aggregateId, [...new Set(claimed.map((e) => e.aggregateId))]),
        lt(outbox.id, Math.max(...claimedIds)),
        notInArray(outbox.id, claimedIds),
      ),
    );
  if (blocked.length === 0) return claimed;
  const blockedIds = new Set(blocked.map((b) => b.aggregateId));
  return claimed.filter((e) => !blockedIds.has(e.aggregateId));
}

export async function markPublished(tx: Db, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await tx.update(outbox).set({ publishedAt: sql`now()` }).where(inArray(outbox.id, ids));
}

export async function countPending(db: Db): Promise<number> {
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(outbox)
    .where(isNull(outbox.publishedAt));
  return Number(row?.n ?? 0);
}

/** Deletes published events older than the retention, a bounded batch at a time. */
export async function deletePublishedBefore(db: Db, cutoff: Date, limit = 10_000): Promise<number> {
  const deleted = await db
    .delete(outbox)
    .where(
      inArray(
        outbox.id,
        db
          .select({ id: outbox.id })
          .from(outbox)
          .where(lt(outbox.publishedAt, cutoff))
          .limit(limit),
      ),
    )
    .returning({ id: outbox.id });
  return deleted.length;
}
