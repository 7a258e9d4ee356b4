/**
 * Book events as Kafka records: the CloudEvents Kafka protocol binding in binary content mode
 * (the value is the event itself, binary protobuf; its attributes are `ce_` headers), and the
 * reading of every record the topic may hold, JSON records of older versions included.
 * The contract is documented in docs/events.md.
 */
import { fromBinary, fromJson, toBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { IHeaders, Message } from "kafkajs";
import {
  type BookEvent,
  BookEventSchema,
  changeOf,
  eventProblem,
  fromEventJson,
} from "./events.ts";

export const CLOUDEVENTS_SPEC_VERSION = "1.0";
/** The `source` of every event: with `id`, it identifies an event (CloudEvents §3.1.1). */
export const CLOUDEVENTS_SOURCE = "urn:petbooks:books";
export const PROTOBUF_CONTENT_TYPE = "application/protobuf";
/** `ce_type` per change: "petbooks.book.created"… */
export const cloudEventType = (event: BookEvent) => `petbooks.${changeOf(event.type) ?? "unknown"}`;

/**
 * Headers to add to a record, after the CloudEvents ones (e.g. `traceparent` when tracing is on).
 * Values left undefined are not sent.
 */
export type ExtraHeaders = (event: BookEvent) => Record<string, string | undefined>;

/** The CloudEvents attributes of `event` as Kafka headers (binary content mode, §3.2.3). */
export function cloudEventHeaders(event: BookEvent): Record<string, string> {
  if (!event.occurredAt || !event.book) throw new TypeError(`event ${event.id} is incomplete`);
  return {
    ce_specversion: CLOUDEVENTS_SPEC_VERSION,
    ce_id: event.id,
    ce_source: CLOUDEVENTS_SOURCE,
    ce_type: cloudEventType(event),
    ce_time: timestampDate(event.occurredAt).toISOString(),
    ce_subject: event.book.id,
    "content-type": PROTOBUF_CONTENT_TYPE,
  };
}

/**
 * The record of `event`: key = book id (one book, one partition, in order), value = the binary
 * protobuf message, CloudEvents headers, then `extra` ones; the record's timestamp is the event's.
 */
export function toKafkaMessage(event: BookEvent, extra?: ExtraHeaders): Message {
  const headers: Record<string, string> = cloudEventHeaders(event);
  for (const [name, value] of Object.entries(extra?.(event) ?? {})) {
    // The CloudEvents attributes are the event's own; nothing else may overwrite them.
    if (value !== undefined && !(name in headers)) headers[name] = value;
  }
  return {
    key: (event.book as { id: string }).id,
    value: Buffer.from(toBinary(BookEventSchema, event)),
    headers,
    timestamp: String(
      timestampDate(event.occurredAt as NonNullable<BookEvent["occurredAt"]>).getTime(),
    ),
  };
}

/** How a record was written: protobuf with CloudEvents headers, or the JSON of older versions. */
export type RecordFormat = "protobuf" | "cloudevents-json" | "legacy-json";

export type DecodedRecord =
  | { event: BookEvent; format: RecordFormat; reason?: undefined }
  | { event?: undefined; format?: RecordFormat; reason: string };

/** A header as a string: kafkajs hands consumers Buffers (an array when a name repeats). */
export function headerText(headers: IHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name];
  const one = Array.isArray(value) ? value[0] : value;
  return one === undefined ? undefined : one.toString();
}

/** `application/protobuf; charset=…` → `application/protobuf`. */
const mediaType = (contentType: string | undefined) =>
  contentType?.split(";")[0]?.trim().toLowerCase();

const PROTOBUF_TYPES = new Set([PROTOBUF_CONTENT_TYPE, "application/x-protobuf"]);

function checked(event: BookEvent, format: RecordFormat, ceId?: string): DecodedRecord {
  const problem = eventProblem(event);
  if (problem) return { format, reason: problem };
  if (ceId !== undefined && ceId !== event.id)
    return { format, reason: "ce_id is not the event's id" };
  return { event, format };
}

/**
 * The event in a record, chosen by its headers: with `ce_specversion`, a CloudEvent in binary
 * mode whose `content-type` says protobuf (ours) or JSON (protobuf's JSON mapping); without any
 * CloudEvents header, the JSON of versions before the protobuf contract. Anything else, or a
 * value that does not decode, gives the reason it was refused.
 */
export function decodeRecord(record: {
  value: Buffer | string | null;
  headers?: IHeaders | undefined;
}): DecodedRecord {
  const { value, headers } = record;
  if (value === null || value.length === 0) return { reason: "empty message" };
  const bytes = typeof value === "string" ? Buffer.from(value) : value;
  const specVersion = headerText(headers, "ce_specversion");
  const contentType = mediaType(headerText(headers, "content-type"));
  if (specVersion !== undefined) {
    if (specVersion !== CLOUDEVENTS_SPEC_VERSION) {
      return { reason: `unsupported CloudEvents specversion ${specVersion}` };
    }
    const ceId = headerText(headers, "ce_id");
    if (contentType !== undefined && PROTOBUF_TYPES.has(contentType)) {
      try {
        return checked(fromBinary(BookEventSchema, bytes), "protobuf", ceId);
      } catch {
        return { format: "protobuf", reason: "not a protobuf BookEvent" };
      }
    }
    if (contentType === "application/json") {
      try {
        const json = JSON.parse(bytes.toString("utf8"));
        return checked(
          fromJson(BookEventSchema, json, { ignoreUnknownFields: true }),
          "cloudevents-json",
          ceId,
        );
      } catch {
        return { format: "cloudevents-json", reason: "not a BookEvent in JSON" };
      }
    }
    return { reason: `unsupported content type ${contentType ?? "(none)"}` };
  }
  // Older versions sent JSON with `event-id` / `event-type` headers and no content type.
  if (contentType !== undefined && contentType !== "application/json") {
    return { reason: `unsupported content type ${contentType}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString("utf8"));
  } catch {
    return { format: "legacy-json", reason: "not JSON" };
  }
  const event = fromEventJson(json);
  return typeof event === "string"
    ? { format: "legacy-json", reason: `not a book event (${event})` }
    : { event, format: "legacy-json" };
}
