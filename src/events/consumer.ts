/**
 * What the `grpc` process does with each book event: one structured log line, duplicates
 * recognised by event id (remembered in `consumed_events`), malformed messages logged and skipped.
 */
import { inArray, lt } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import type { Logger } from "../logger.ts";
import { consumedEvents } from "./consumed-events.table.ts";
import { type BookEvent, isBookEvent } from "./events.ts";

/** Where a message came from: Kafka's coordinates, or the in-process bus. */
export interface EventSource {
  topic: string;
  partition?: number;
  offset?: string;
}

export interface IncomingMessage extends EventSource {
  value: Buffer | string | null;
}

export interface EventConsumer {
  /** Handles messages in order; resolves once every one is handled (and remembered). */
  handleBatch(messages: IncomingMessage[]): Promise<void>;
  /** For the in-process bus, whose events are already parsed. */
  handleEvent(event: BookEvent, source?: EventSource): Promise<void>;
}

function parse(value: IncomingMessage["value"]): BookEvent | string {
  if (value === null) return "empty message";
  let data: unknown;
  try {
    data = JSON.parse(typeof value === "string" ? value : value.toString("utf8"));
  } catch {
    return "not JSON";
  }
  return isBookEvent(data) ? data : "not a book event";
}

/** Marks the ids handled and returns those that were new. One statement per batch. */
async function rememberNew(db: Db, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const inserted = await db
    .insert(consumedEvents)
    .values(ids.map((eventId) => ({ eventId })))
    .onConflictDoNothing()
    .returning({ eventId: consumedEvents.eventId });
  return new Set(inserted.map((r) => r.eventId));
}

export function createEventConsumer(db: Db, logger: Logger): EventConsumer {
  const log = (event: BookEvent, source: EventSource, duplicate: boolean) => {
    const fields = {
      event_type: event.type,
      event_id: event.id,
      book_id: event.book.id,
      title: event.book.title,
      topic: source.topic,
      partition: source.partition,
      offset: source.offset,
    };
    if (duplicate) logger.info("duplicate book event ignored", fields);
    else logger.info("book event", fields);
  };

  const handleBatch = async (messages: IncomingMessage[]) => {
    const parsed = messages.map((message) => ({ message, event: parse(message.value) }));
    const events = parsed.flatMap((p) => (typeof p.event === "string" ? [] : [p.event]));
    const fresh = await rememberNew(db, [...new Set(events.map((e) => e.id))]);
    for (const { message, event } of parsed) {
      if (typeof event === "string") {
        logger.error("malformed event skipped", {
          reason: event,
          topic: message.topic,
          partition: message.partition,
          offset: message.offset,
        });
        continue;
      }
      // A second copy within the same batch is a duplicate too.
      const isNew = fresh.delete(event.id);
      log(event, message, !isNew);
    }
  };

  return {
    handleBatch,
    handleEvent: (event, source = { topic: "in-process" }) =>
      handleBatch([{ ...source, value: JSON.stringify(event) }]),
  };
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
