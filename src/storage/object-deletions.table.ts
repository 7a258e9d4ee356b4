import { index, integer, pgTable, text, timestamp } from "drizzle-orm/pg-core";

/**
 * Photo objects whose removal failed after their rows were deleted (the bucket or disk was away):
 * `serve` sweeps this table and tries again, so a brief storage outage orphans nothing.
 */
export const pendingObjectDeletions = pgTable(
  "pending_object_deletions",
  {
    /** The stored file name (the object key under the storage's prefix). */
    fileName: text("file_name").primaryKey(),
    attempts: integer("attempts").notNull().default(0),
    /** When the sweep may try again: pushed back exponentially after each failure. */
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true, precision: 6 })
      .notNull()
      .defaultNow(),
    lastError: text("last_error"),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
  },
  (t) => [index("pending_object_deletions_next_attempt_idx").on(t.nextAttemptAt)],
);
