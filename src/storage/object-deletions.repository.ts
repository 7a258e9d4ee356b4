/** The SQL of the pending object deletions (object-deletions.table.ts), swept by `serve`. */
import { asc, eq, exists, lte, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { petPhotos } from "../pets/pets.table.ts";
import { pendingObjectDeletions } from "./object-deletions.table.ts";

export interface PendingDeletion {
  fileName: string;
  attempts: number;
}

/** Error texts are kept for operators, not whole: a stack or an XML body can be long. */
const MAX_ERROR_LENGTH = 500;

export function createObjectDeletionsRepository(db: Db) {
  return {
    /** Notes files whose removal failed, due for a retry at `at`; a file noted twice stays once. */
    async record(fileNames: string[], error: string, at: Date): Promise<void> {
      if (fileNames.length === 0) return;
      await db
        .insert(pendingObjectDeletions)
        .values(
          fileNames.map((fileName) => ({
            fileName,
            lastError: error.slice(0, MAX_ERROR_LENGTH),
            nextAttemptAt: at,
          })),
        )
        .onConflictDoUpdate({
          target: pendingObjectDeletions.fileName,
          set: { lastError: sql`excluded.last_error` },
        });
    },

    /**
     * Up to `limit` deletions due by `now`, oldest first. An entry naming a file that a photo row
     * holds is dropped, never swept (fresh random names make it impossible, but a wrong entry must
     * not take a live photo).
     */
    async due(now: Date, limit: number): Promise<PendingDeletion[]> {
      await db
        .delete(pendingObjectDeletions)
        .where(
          exists(
            db
              .select({ one: sql`1` })
              .from(petPhotos)
              .where(eq(petPhotos.fileName, pendingObjectDeletions.fileName)),
          ),
        );
      return db
        .select({
          fileName: pendingObjectDeletions.fileName,
          attempts: pendingObjectDeletions.attempts,
        })
        .from(pendingObjectDeletions)
        .where(lte(pendingObjectDeletions.nextAttemptAt, now))
        .orderBy(asc(pendingObjectDeletions.nextAttemptAt))
        .limit(limit);
    },

    async done(fileName: string): Promise<void> {
      await db.delete(pendingObjectDeletions).where(eq(pendingObjectDeletions.fileName, fileName));
    },

    async failed(fileName: string, attempts: number, next: Date, error: string): Promise<void> {
      await db
        .update(pendingObjectDeletions)
        .set({ attempts, nextAttemptAt: next, lastError: error.slice(0, MAX_ERROR_LENGTH) })
        .where(eq(pendingObjectDeletions.fileName, fileName));
    },

    async count(): Promise<number> {
      const [row] = await db.select({ n: sql<number>`count(*)::int` }).from(pendingObjectDeletions);
      return Number(row?.n ?? 0);
    },
  };
}

export type ObjectDeletionsRepository = ReturnType<typeof createObjectDeletionsRepository>;
