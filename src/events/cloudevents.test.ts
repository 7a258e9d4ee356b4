import { describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import {
  CLOUDEVENTS_SOURCE,
  cloudEventHeaders,
  decodeRecord,
  PROTOBUF_CONTENT_TYPE,
  toKafkaMessage,
} from "./cloudevents.ts";
import {
  BOOK_CHANGES,
  BookEventSchema,
  type BookEventType,
  fromEventJson,
  toEventJson,
} from "./events.ts";
import { testEvent, testEventJson } from "./test-events.ts";

/** Headers as a kafkajs consumer hands them over: Buffers. */
const received = (headers: Record<string, string | Buffer | undefined> | undefined) =>
  Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k, Buffer.from(String(v))]));

describe("Kafka records of book events", () => {
  test.each(BOOK_CHANGES)(
    "%s round-trips through the generated type with every header",
    (change) => {
      const occurredAt = new Date("2026-11-23T22:21:34.567Z");
      const event = testEvent(change, { title: "Dune", published_on: "1965-08-01" }, occurredAt);
      const message = toKafkaMessage(event);

      expect(message.key).toBe(event.book?.id as string);
      expect(message.timestamp).toBe(String(occurredAt.getTime()));
      expect(message.headers).toEqual({
        ce_specversion: "1.0",
        ce_id: event.id,
        ce_source: CLOUDEVENTS_SOURCE,
        ce_type: `petbooks.${change}`,
        ce_time: "2026-11-23T22:21:34.567Z",
        ce_subject: event.book?.id as string,
        "content-type": PROTOBUF_CONTENT_TYPE,
      });
      // The value is the binary protobuf message itself (binary content mode).
      expect(fromBinary(BookEventSchema, message.value as Buffer)).toEqual(event);

      const decoded = decodeRecord({
        value: message.value as Buffer,
        headers: received(message.headers as Record<string, string>),
      });
      expect(decoded.format).toBe("protobuf");
      expect(decoded.event).toEqual(event);
      // And back to the JSON form, unchanged: the outbox's form survives the trip.
      const json = testEventJson(change, {}, occurredAt);
      expect(toEventJson(fromEventJson(json) as typeof event)).toEqual(json);
    },
  );

  test("extra headers (traceparent) go after the CloudEvents ones and cannot replace them", () => {
    const event = testEvent();
    const message = toKafkaMessage(event, () => ({
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      ce_id: "forged",
      tracestate: undefined,
    }));
    expect(message.headers).toMatchObject({
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      ce_id: event.id,
    });
    expect(Object.keys(message.headers ?? {})).not.toContain("tracestate");
  });

  test("a JSON record of an older version is read by its lack of CloudEvents headers", () => {
    const json = testEventJson("book.deleted");
    const decoded = decodeRecord({
      value: Buffer.from(JSON.stringify(json)),
      headers: received({ "event-id": json.id, "event-type": json.type }),
    });
    expect(decoded.format).toBe("legacy-json");
    expect(decoded.event && toEventJson(decoded.event)).toEqual(json);
  });

  test("a CloudEvent in protobuf's JSON mapping is read too (another producer's)", () => {
    const event = testEvent("book.updated");
    const headers = { ...cloudEventHeaders(event), "content-type": "application/json" };
    const value = Buffer.from(
      JSON.stringify({
        id: event.id,
        type: "BOOK_EVENT_TYPE_UPDATED",
        occurredAt: toEventJson(event).occurred_at,
        book: { id: event.book?.id, title: "T", author: "A", publishedOn: "2000-01-01" },
        aFieldFromTheFuture: 1,
      }),
    );
    const decoded = decodeRecord({ value, headers: received(headers) });
    expect(decoded).toMatchObject({ format: "cloudevents-json", event: { id: event.id } });
  });

  test.each([
    ["no value", null, {}, "empty message"],
    ["an event type this version does not know", "enum", {}, "unknown event type"],
    [
      "a type of content it cannot read",
      "{}",
      { "content-type": "text/plain" },
      "unsupported content type text/plain",
    ],
  ])("refuses %s", (_, value, headers, reason) => {
    let bytes: Buffer | null = value === null ? null : Buffer.from(value);
    let all: Record<string, string> = headers;
    if (value === "enum") {
      // A newer producer's type (protobuf enums are open: the number goes over the wire).
      const message = toKafkaMessage({ ...testEvent(), type: 9 as BookEventType });
      bytes = message.value as Buffer;
      all = message.headers as Record<string, string>;
    }
    expect(decodeRecord({ value: bytes, headers: received(all) }).reason).toBe(reason);
  });
});
