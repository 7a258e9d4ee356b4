/**
 * The in-process event bus: the relay's transport when no Kafka is configured. Subscribers (the
 * one-process mode's consumer) get every event in order; a failing subscriber is logged, not
 * retried, and does not hold up the others.
 */
import type { Logger } from "../logger.ts";
import type { BookEvent, EventTransport } from "./events.ts";

export type EventHandler = (event: BookEvent) => void | Promise<void>;

export interface InProcessBus extends EventTransport {
  subscribe(handler: EventHandler): () => void;
}

export function createInProcessBus(logger: Logger): InProcessBus {
  const handlers = new Set<EventHandler>();
  return {
    name: "in-process",
    async start() {},
    async publish(events) {
      for (const event of events) {
        for (const handler of handlers) {
          try {
            await handler(event);
          } catch (err) {
            logger.error("event subscriber failed", { event_id: event.id, err });
          }
        }
      }
    },
    subscribe(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    async stop() {
      handlers.clear();
    },
  };
}
