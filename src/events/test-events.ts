/**
 * For tests: fresh book events, in code (the generated type) and in their JSON form, and the error
 * a consumer gets while the database is out of reach.
 */
import { type BookChange, type BookEvent, type BookEventJson, fromEventJson } from "./events.ts";

/** A new event's JSON form (fresh event and book ids), with `book` fields overridden. */
export function testEventJson(
  change: BookChange = "book.created",
  book: Partial<BookEventJson["book"]> = {},
  occurredAt = new Date(),
): BookEventJson {
  return {
    id: Bun.randomUUIDv7(),
    type: change,
    occurred_at: occurredAt.toISOString(),
    book: {
      id: Bun.randomUUIDv7(),
      title: "The Left Hand of Darkness",
      author: "Ursula K. Le Guin",
      published_on: "1969-03-01",
      created_at: "2026-01-01T00:00:00Z",
      updated_at: "2026-01-01T00:00:00Z",
      ...book,
    },
  };
}

/** The same as a BookEvent message. */
export function testEvent(
  change: BookChange = "book.created",
  book: Partial<BookEventJson["book"]> = {},
  occurredAt = new Date(),
): BookEvent {
  const event = fromEventJson(testEventJson(change, book, occurredAt));
  if (typeof event === "string") throw new Error(event);
  return event;
}

/** What postgres.js throws for a refused connection, wrapped with its query as Drizzle does. */
export function databaseDownError(): Error {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), {
    code: "ECONNREFUSED",
  });
  return new Error("Failed query: insert into consumed_events …", { cause: refused });
}
