import { index, pgTable, timestamp, uuid } from "drizzle-orm/pg-core";

/**
 * Ids of the book events the consumer has handled, so a redelivered event (Kafka delivers at
 * least once) is recognised as a duplicate, across restarts and consumer instances.
 */
export const consumedEvents = pgTable(
  "consumed_events",
  {
    eventId: uuid("event_id").primaryKey(),
    consumedAt: timestamp("consumed_at", { withTimezone: true, precision: 6 })
      .notNull()
      .defaultNow(),
  },
  (t) => [index("consumed_events_consumed_at_idx").on(t.consumedAt)],
);
