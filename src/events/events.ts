/**
 * Book change events. In code an event is the buf-generated `petbooks.v1.BookEvent`
 * (proto/petbooks/v1/books.proto); Kafka carries it as binary protobuf (cloudevents.ts). Its JSON
 * form below is what the outbox stores and what versions before the protobuf contract published:
 * old and new relays share the outbox during a rolling upgrade, so the stored form stays the one
 * both read (docs/events.md).
 */

import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Book as RestBook } from "../books/books.model.ts";
import {
  type Book,
  type BookEvent,
  BookEventSchema,
  BookEventType,
} from "../gen/petbooks/v1/books_pb.ts";
import { isUuid } from "../uuid.ts";

export { type BookEvent, BookEventSchema, BookEventType };

/** The `book` of an event's JSON form: the book as the REST API shows it. */
export type BookSnapshot = RestBook;

/** The change kinds as named in the JSON form, the outbox's `type` column and the logs. */
export const BOOK_CHANGES = ["book.created", "book.updated", "book.deleted"] as const;
export type BookChange = (typeof BOOK_CHANGES)[number];

const TYPE_OF_CHANGE: Record<BookChange, BookEventType> = {
  "book.created": BookEventType.CREATED,
  "book.updated": BookEventType.UPDATED,
  "book.deleted": BookEventType.DELETED,
};

/** BOOK_EVENT_TYPE_CREATED for "book.created"… */
export const typeOfChange = (change: BookChange): BookEventType => TYPE_OF_CHANGE[change];

/** "book.created" for BOOK_EVENT_TYPE_CREATED…; undefined for UNSPECIFIED or a newer type. */
export function changeOf(type: BookEventType): BookChange | undefined {
  return BOOK_CHANGES.find((change) => TYPE_OF_CHANGE[change] === type);
}

/**
 * The JSON form of an event: the outbox payload, and the record value of versions before the
 * protobuf contract. Field names and formats are frozen: old relays and consumers read them.
 */
export interface BookEventJson {
  id: string;
  type: BookChange;
  /** RFC 3339 with milliseconds, UTC. */
  occurred_at: string;
  book: BookSnapshot;
}

/** A new event of `change`, in the JSON form the outbox stores, with a fresh UUIDv7 id. */
export function outboxEvent(
  change: BookChange,
  book: BookSnapshot,
  at = new Date(),
): BookEventJson {
  return { id: Bun.randomUUIDv7(), type: change, occurred_at: at.toISOString(), book };
}

/** RFC 3339, whole seconds, as the REST API writes created_at and updated_at. */
const rfc3339Seconds = (date: Date) => `${date.toISOString().slice(0, 19)}Z`;

const DATE = /^\d{4}-\d{2}-\d{2}$/;

function dateOf(value: unknown): Date | undefined {
  if (typeof value !== "string") return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * The event a JSON form describes, or why it is none. Strict about what it reads (every field of
 * the book, real dates) and lenient about what it does not (extra fields are ignored).
 */
/**
 * The event an outbox row stores, as the driver hands its `payload` over (parsed, or JSON text),
 * or why it is none.
 */
export function fromStoredPayload(payload: unknown): BookEvent | string {
  return fromEventJson(typeof payload === "string" ? JSON.parse(payload) : payload);
}

export function fromEventJson(value: unknown): BookEvent | string {
  if (typeof value !== "object" || value === null) return "not a JSON object";
  const v = value as Record<string, unknown>;
  const book = v.book as Record<string, unknown> | null | undefined;
  if (typeof v.id !== "string" || !isUuid(v.id)) return "id is not a UUID";
  if (!(BOOK_CHANGES as readonly unknown[]).includes(v.type)) return "unknown event type";
  const occurredAt = dateOf(v.occurred_at);
  if (!occurredAt) return "occurred_at is not a date";
  if (typeof book !== "object" || book === null) return "no book";
  const createdAt = dateOf(book.created_at);
  const updatedAt = dateOf(book.updated_at);
  if (
    typeof book.id !== "string" ||
    !isUuid(book.id) ||
    typeof book.title !== "string" ||
    typeof book.author !== "string" ||
    typeof book.published_on !== "string" ||
    !DATE.test(book.published_on) ||
    !createdAt ||
    !updatedAt
  ) {
    return "book is incomplete";
  }
  return create(BookEventSchema, {
    id: v.id,
    type: TYPE_OF_CHANGE[v.type as BookChange],
    occurredAt: timestampFromDate(occurredAt),
    book: {
      id: book.id,
      title: book.title,
      author: book.author,
      publishedOn: book.published_on,
      createdAt: timestampFromDate(createdAt),
      updatedAt: timestampFromDate(updatedAt),
    },
  });
}

/** The JSON form of an event (for a JSON record, the outbox, a test). */
export function toEventJson(event: BookEvent): BookEventJson {
  const change = changeOf(event.type);
  if (!change || !event.book || !event.occurredAt) {
    throw new TypeError(`event ${event.id} has no JSON form (type ${event.type})`);
  }
  return {
    id: event.id,
    type: change,
    occurred_at: timestampDate(event.occurredAt).toISOString(),
    book: snapshotOf(event.book),
  };
}

/** The REST shape of a Book message. */
export function snapshotOf(book: Book): BookSnapshot {
  const when = (t: Book["createdAt"]) => (t ? rfc3339Seconds(timestampDate(t)) : "");
  return {
    id: book.id,
    title: book.title,
    author: book.author,
    published_on: book.publishedOn,
    created_at: when(book.createdAt),
    updated_at: when(book.updatedAt),
  };
}

/**
 * Why a decoded message is not a usable event (no id, an unknown type, no book), or undefined.
 * A type this version does not know (a newer producer's) is refused: its meaning is unknown.
 */
export function eventProblem(event: BookEvent): string | undefined {
  if (!isUuid(event.id)) return "id is not a UUID";
  if (!changeOf(event.type)) return "unknown event type";
  if (!event.occurredAt) return "no occurred_at";
  if (!event.book || !isUuid(event.book.id)) return "no book";
  return undefined;
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
