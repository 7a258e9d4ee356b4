/**
 * The live book events of one process, for its WatchBooks streams: each event with its place in
 * publication order (`outbox.published_seq`), handed to every listener at once, in that order.
 * The outbox tail (outbox-tail.ts) is the only source; it reads by number, so a copy cannot come
 * (an item at or below the last number handed out is ignored all the same, as a guard).
 */
import type { Logger } from "../logger.ts";
import type { BookEvent } from "./events.ts";

/** An event and its `published_seq`. */
export interface LiveEvent {
  seq: number;
  event: BookEvent;
}

export type LiveListener = (item: LiveEvent) => void;

export interface LiveEvents {
  /** Hands `item` to every listener, synchronously; one not after the last is ignored. */
  publish(item: LiveEvent): void;
  /** Listens until the returned function is called. Listeners must not block or throw. */
  subscribe(listener: LiveListener): () => void;
  readonly listeners: number;
  /** The number of the last item handed out; 0 before the first. */
  readonly lastSeq: number;
  /**
   * Resolves once the source follows publication from where it stands now: every item numbered
   * after that comes. A listener that reads the past itself (a resume) waits for it first.
   */
  following(): Promise<void>;
}

export interface LiveEventsOptions {
  logger: Logger;
  /** The source's `follow` (outbox-tail.ts); without one, the source always follows. */
  follow?: () => Promise<void>;
}

export function createLiveEvents(options: LiveEventsOptions): LiveEvents {
  const { logger } = options;
  const listeners = new Set<LiveListener>();
  let lastSeq = 0;

  return {
    publish(item) {
      if (item.seq <= lastSeq) return;
      lastSeq = item.seq;
      for (const listener of listeners) {
        try {
          listener(item);
        } catch (err) {
          logger.error("WatchBooks listener failed", { event_id: item.event.id, err });
        }
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    get listeners() {
      return listeners.size;
    },
    get lastSeq() {
      return lastSeq;
    },
    following: () => options.follow?.() ?? Promise.resolve(),
  };
}
