/**
 * The in-process event bus: the relay's transport when no Kafka is configured. Subscribers (the
 * one-process mode's consumer) get every event in order; a failing subscriber is logged, not
 * retried, and does not hold up the others.
 *
 * `publish` only queues: delivery runs on its own task once the relay's transaction is free. A
 * subscriber that writes to the database would otherwise wait for the relay's transaction while
 * the relay waits for it, a deadlock on the single-connection embedded database. Events queued
 * but not yet delivered die with the process, as everything in-process does.
 */
import type { Logger } from "../logger.ts";
import type { BookEvent, EventTransport } from "./events.ts";

export type EventHandler = (event: BookEvent) => void | Promise<void>;

export interface InProcessBus extends EventTransport {
  subscribe(handler: EventHandler): () => void;
  /** Resolves once every event published so far has been delivered. */
  idle(): Promise<void>;
}

export function createInProcessBus(logger: Logger): InProcessBus {
  const handlers = new Set<EventHandler>();
  const queue: BookEvent[] = [];
  let delivering: Promise<void> | undefined;

  const deliver = async () => {
    for (let event = queue.shift(); event; event = queue.shift()) {
      for (const handler of handlers) {
        try {
          await handler(event);
        } catch (err) {
          logger.error("event subscriber failed", { event_id: event.id, err });
        }
      }
    }
    delivering = undefined;
  };

  return {
    name: "in-process",
    async start() {},
    async publish(events) {
      queue.push(...events);
      // setTimeout, not a microtask: the relay commits before the first handler runs.
      delivering ??= new Promise((resolve) => setTimeout(resolve, 0)).then(deliver);
    },
    subscribe(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    async idle() {
      while (delivering) await delivering;
    },
    async stop() {
      await this.idle();
      handlers.clear();
    },
  };
}
