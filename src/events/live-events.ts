/**
 * The live book events of one process, for its WatchBooks streams: fed by the in-process bus
 * (`dev`) or by this process' own Kafka group (kafka-consumer.ts, `kind: "feed"`), handed to
 * every listener at once. Kafka delivers at least once, so a copy of a recent event (the relay
 * resending a batch whose acknowledgement was lost) is dropped by id here, once for everyone.
 */
import type { Logger } from "../logger.ts";
import { decodeRecord } from "./cloudevents.ts";
import type { IncomingMessage } from "./consumer.ts";
import type { BookEvent } from "./events.ts";

export type LiveListener = (event: BookEvent) => void;

export interface LiveEvents {
  /** Hands `event` to every listener, synchronously; a copy of a recent event is dropped. */
  publish(event: BookEvent): void;
  /** Listens until the returned function is called. Listeners must not block or throw. */
  subscribe(listener: LiveListener): () => void;
  /** Kafka records (the feed consumer's batches): decoded, then published in order. */
  handleBatch(messages: IncomingMessage[]): Promise<void>;
  readonly listeners: number;
}

export interface LiveEventsOptions {
  logger: Logger;
  /** How many recent event ids are remembered to drop copies. Default 10,000. */
  recentIds?: number;
}

export function createLiveEvents(options: LiveEventsOptions): LiveEvents {
  const { logger } = options;
  const capacity = options.recentIds ?? 10_000;
  const listeners = new Set<LiveListener>();
  /** Insertion-ordered: the oldest id goes first when full. */
  const recent = new Set<string>();

  const publish = (event: BookEvent) => {
    if (recent.has(event.id)) return;
    recent.add(event.id);
    if (recent.size > capacity) {
      const oldest = recent.values().next().value;
      if (oldest !== undefined) recent.delete(oldest);
    }
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (err) {
        logger.error("WatchBooks listener failed", { event_id: event.id, err });
      }
    }
  };

  return {
    publish,
    subscribe(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    async handleBatch(messages) {
      for (const message of messages) {
        const decoded = decodeRecord(message);
        // The logging consumer reports malformed records; one line per record is enough.
        if (decoded.event) publish(decoded.event);
        else logger.debug("record skipped by the WatchBooks feed", { reason: decoded.reason });
      }
    },
    get listeners() {
      return listeners.size;
    },
  };
}
