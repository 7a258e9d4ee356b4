/**
 * What the `grpc` process does with each book event: one structured log line, duplicates
 * recognised by event id (remembered in `consumed_events`), malformed messages logged and skipped.
 * Records are read by their headers (cloudevents.ts): protobuf CloudEvents, and the JSON records
 * older versions wrote, counted so that an operator sees when the last of them went through.
 */
import type { IHeaders } from "kafkajs";
import type { Db } from "../db/client.ts";
import type { Logger } from "../logger.ts";
import { type DecodedRecord, decodeRecord, type RecordFormat } from "./cloudevents.ts";
import { rememberNew } from "./consumed-events.repository.ts";
import { type BookEvent, changeOf } from "./events.ts";

// The retention sweep `grpc` runs (deps.ts), with the SQL in the repository.
export { forgetConsumedBefore } from "./consumed-events.repository.ts";

/** Where a message came from: Kafka's coordinates, or the in-process bus. */
export interface EventSource {
  topic: string;
  partition?: number;
  offset?: string;
}

export interface IncomingMessage extends EventSource {
  value: Buffer | string | null;
  headers?: IHeaders;
}

/** Events handled since the process started, by how they were written. */
export interface ConsumerStats {
  protobuf: number;
  /** CloudEvents whose content type is JSON (another producer's; petbooks writes protobuf). */
  cloudeventsJson: number;
  /** JSON records of versions before the protobuf contract (rolling upgrades, old offsets). */
  legacyJson: number;
  /** Events of the in-process bus, never serialised. */
  inProcess: number;
  /** Records that were no book event, logged and skipped. */
  skipped: number;
  duplicates: number;
}

export interface EventConsumer {
  /** Handles messages in order; resolves once every one is handled (and remembered). */
  handleBatch(messages: IncomingMessage[]): Promise<void>;
  /** For the in-process bus, whose events are already decoded. */
  handleEvent(event: BookEvent, source?: EventSource): Promise<void>;
  stats(): ConsumerStats;
}

type Handled = { source: EventSource } & (
  | DecodedRecord
  | { event: BookEvent; format: "in-process"; reason?: undefined }
);

const STAT_OF_FORMAT: Record<RecordFormat | "in-process", keyof ConsumerStats> = {
  protobuf: "protobuf",
  "cloudevents-json": "cloudeventsJson",
  "legacy-json": "legacyJson",
  "in-process": "inProcess",
};

/** Counts before the first event. */
export function emptyConsumerStats(): ConsumerStats {
  return {
    protobuf: 0,
    cloudeventsJson: 0,
    legacyJson: 0,
    inProcess: 0,
    skipped: 0,
    duplicates: 0,
  };
}

export function createEventConsumer(db: Db, logger: Logger): EventConsumer {
  const stats = emptyConsumerStats();

  const log = (event: BookEvent, source: EventSource, format: string, duplicate: boolean) => {
    const fields = {
      event_type: changeOf(event.type),
      event_id: event.id,
      book_id: event.book?.id,
      title: event.book?.title,
      format,
      topic: source.topic,
      partition: source.partition,
      offset: source.offset,
    };
    if (duplicate) logger.info("duplicate book event ignored", fields);
    else logger.info("book event", fields);
  };

  const handle = async (items: Handled[]) => {
    const fresh = await rememberNew(db, [
      ...new Set(items.flatMap((i) => (i.event ? [i.event.id] : []))),
    ]);
    let legacy = 0;
    for (const item of items) {
      const { source } = item;
      if (!item.event) {
        stats.skipped += 1;
        logger.error("malformed event skipped", {
          reason: item.reason,
          format: item.format,
          topic: source.topic,
          partition: source.partition,
          offset: source.offset,
        });
        continue;
      }
      // A second copy within the same batch is a duplicate too.
      const isNew = fresh.delete(item.event.id);
      if (isNew) stats[STAT_OF_FORMAT[item.format]] += 1;
      else stats.duplicates += 1;
      if (item.format === "legacy-json") legacy += 1;
      log(item.event, source, item.format, !isNew);
    }
    if (legacy > 0) {
      // Older versions' records: a rolling upgrade, or offsets from before it. Once no line like
      // this appears any more, every producer writes protobuf.
      logger.info("legacy JSON book events consumed", {
        count: legacy,
        total: stats.legacyJson,
      });
    }
  };

  return {
    handleBatch: (messages) =>
      handle(
        messages.map((message) => {
          const { value, headers, ...source } = message;
          return { source, ...decodeRecord({ value, headers }) };
        }),
      ),
    handleEvent: (event, source = { topic: "in-process" }) =>
      handle([{ source, event, format: "in-process" }]),
    stats: () => ({ ...stats }),
  };
}
