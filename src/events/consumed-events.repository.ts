/** All SQL for the ids of the book events the consumer has handled (consumed-events.table.ts). */
import { inArray, lt } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { consumedEvents } from "./consumed-events.table.ts";

/** Marks the ids handled and returns those that were new. One statement per batch. */
export async function rememberNew(db: Db, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const inserted = await db
    .insert(consumedEvents)
    .values(ids.map((eventId) => ({ eventId })))
    .onConflictDoNothing()
    .returning({ eventId: consumedEvents.eventId });
  return new Set(inserted.map((r) => r.eventId));
}

/** Forgets handled ids older than the retention (a redelivery is never that late). */
export async function forgetConsumedBefore(db: Db, cutoff: Date): Promise<void> {
  const old = db
    .select({ id: consumedEvents.eventId })
    .from(consumedEvents)
    .where(lt(consumedEvents.consumedAt, cutoff))
    .limit(10_000);
  await db.delete(consumedEvents).where(inArray(consumedEvents.eventId, old));
}
