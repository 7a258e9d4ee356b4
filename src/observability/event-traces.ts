/**
 * The trace a book event was written in, carried from the write to its consumer: the outbox row
 * stores the writer's W3C `traceparent`, the relay remembers it for the events it claims, the
 * Kafka transport sends it as a record header, and the consumer (or the in-process bus' consumer)
 * continues that trace. Nothing here touches OpenTelemetry: with tracing off the source is unset
 * and every row gets null.
 */

let source: (() => string | undefined) | undefined;

/** Set by tracing when it starts (tracing.ts); unset again by tests. */
export function setTraceparentSource(current: (() => string | undefined) | undefined): void {
  source = current;
}

/** The `traceparent` of the span running now, for an outbox row; null without one. */
export function traceparentNow(): string | null {
  return source?.() ?? null;
}

/** Events claimed lately, by event id: a batch is published right after its claim. */
const recent = new Map<string, string>();
const MAX_REMEMBERED = 10_000;

/** The relay claimed these rows: keep their trace contexts for the publish that follows. */
export function rememberEventTraces(
  rows: readonly { traceparent?: string | null; payload: unknown }[],
): void {
  for (const row of rows) {
    const id = (row.payload as { id?: unknown } | null)?.id;
    if (!row.traceparent || typeof id !== "string") continue;
    recent.delete(id);
    recent.set(id, row.traceparent);
  }
  // Maps iterate in insertion order: the oldest go first.
  for (const id of recent.keys()) {
    if (recent.size <= MAX_REMEMBERED) break;
    recent.delete(id);
  }
}

/** The `traceparent` an event was written with, if the relay claimed it in this process. */
export function eventTraceparent(eventId: string): string | undefined {
  return recent.get(eventId);
}
