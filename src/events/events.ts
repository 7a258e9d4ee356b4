/** Book change events: the JSON every transport carries, and the transport contract. */

export const BOOK_EVENT_TYPES = ["book.created", "book.updated", "book.deleted"] as const;
export type BookEventType = (typeof BOOK_EVENT_TYPES)[number];

export interface BookSnapshot {
  id: string;
  title: string;
  author: string;
  published_on: string;
  created_at: string;
  updated_at: string;
}

/** The event as published: `book` is the full state, the last state for deletes. */
export interface BookEvent {
  id: string;
  type: BookEventType;
  occurred_at: string;
  book: BookSnapshot;
}

/**
 * Where the outbox relay hands events. `publish` resolves only once every event is durably
 * accepted (for Kafka: acknowledged by all in-sync replicas); any rejection means none of the
 * batch may be considered published. Events of one book must arrive in the order given.
 */
export interface EventTransport {
  readonly name: string;
  start(): Promise<void>;
  publish(events: BookEvent[]): Promise<void>;
  stop(): Promise<void>;
  /** Counters for health checks and metrics; transports without any leave it out. */
  stats?(): TransportStats;
}

export interface TransportStats {
  /** Producers replaced because the broker stopped accepting the old one's sequence numbers. */
  producerRecreations: number;
}

export function isBookEvent(value: unknown): value is BookEvent {
  const v = value as BookEvent;
  return (
    typeof v === "object" &&
    v !== null &&
    typeof v.id === "string" &&
    (BOOK_EVENT_TYPES as readonly string[]).includes(v.type) &&
    typeof v.occurred_at === "string" &&
    typeof v.book === "object" &&
    v.book !== null &&
    typeof v.book.id === "string"
  );
}
