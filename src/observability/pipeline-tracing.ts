/**
 * Traces through the event pipeline (event-traces.ts says how the context travels): a producer
 * span per published batch, linked to the writes it carries, and a consumer span per event,
 * child of the write that made it, so one trace runs from `POST /books` to the consumer's log
 * line. Installed only when tracing is on.
 */
import { type Link, type Span, SpanKind, trace } from "@opentelemetry/api";
import { headerText } from "../events/cloudevents.ts";
import type { EventConsumer, IncomingMessage } from "../events/consumer.ts";
import type { EventTransport } from "../events/events.ts";
import { exceptionOf } from "../redact.ts";
import { eventTraceparent } from "./event-traces.ts";
import type { Tracing } from "./tracing.ts";

/** `transport` with a producer span around each publish; itself without tracing. */
export function traceTransport<T extends EventTransport>(
  transport: T,
  tracing: Tracing | undefined,
  destination: string,
): T {
  if (!tracing) return transport;
  return {
    ...transport,
    publish: (events) => {
      const links: Link[] = [];
      for (const event of events) {
        const writer = trace.getSpanContext(tracing.fromTraceparent(eventTraceparent(event.id)));
        if (writer) links.push({ context: writer });
      }
      return tracing.tracer.startActiveSpan(
        `publish ${destination}`,
        {
          kind: SpanKind.PRODUCER,
          links,
          attributes: {
            "messaging.system": transport.name === "kafka" ? "kafka" : "in-process",
            "messaging.destination.name": destination,
            "messaging.batch.message_count": events.length,
          },
        },
        (span) =>
          inSpan(span, async () => {
            await transport.publish(events);
          }),
      );
    },
  };
}

/** Runs `work` in `span`: a failure is recorded on it (status ERROR), and the span ends either way. */
async function inSpan<T>(span: Span, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    span.recordException(exceptionOf(err));
    span.setStatus({ code: 2 });
    throw err;
  } finally {
    span.end();
  }
}

/** Kafka record headers of an event: the `traceparent` of the write that made it. */
export function traceHeaders(tracing: Tracing | undefined) {
  return tracing && ((event: { id: string }) => ({ traceparent: eventTraceparent(event.id) }));
}

/**
 * `consumer` with a consumer span per event, child of the write's trace (the record's
 * `traceparent` header, or for the in-process bus the relay's note of it); log lines written while
 * handling carry its ids. With tracing on, a Kafka batch is handled one event at a time.
 */
export function traceConsumer(
  consumer: EventConsumer,
  tracing: Tracing | undefined,
): EventConsumer {
  if (!tracing) return consumer;
  const processing = <T>(
    parent: string | undefined,
    attributes: Record<string, string | number>,
    handle: () => Promise<T>,
  ) =>
    tracing.tracer.startActiveSpan(
      `process ${attributes["messaging.destination.name"]}`,
      { kind: SpanKind.CONSUMER, attributes },
      tracing.fromTraceparent(parent),
      (span) => inSpan(span, handle),
    );
  const attributesOf = (message: Pick<IncomingMessage, "topic" | "partition" | "offset">) => ({
    "messaging.system": message.partition === undefined ? "in-process" : "kafka",
    "messaging.destination.name": message.topic,
    ...(message.partition !== undefined && {
      "messaging.destination.partition.id": String(message.partition),
    }),
    ...(message.offset !== undefined && { "messaging.kafka.offset": Number(message.offset) }),
  });
  return {
    ...consumer,
    async handleBatch(messages) {
      for (const message of messages) {
        await processing(headerText(message.headers, "traceparent"), attributesOf(message), () =>
          consumer.handleBatch([message]),
        );
      }
    },
    handleEvent: (event, source = { topic: "in-process" }) =>
      processing(eventTraceparent(event.id), attributesOf(source), () =>
        consumer.handleEvent(event, source),
      ),
  };
}
