/**
 * WatchBooks streams: each one follows this process' live events (live-events.ts), optionally
 * only some books, optionally after replaying what a client missed since the last event it saw
 * (published outbox rows, kept for OUTBOX_RETENTION_HOURS).
 *
 * Every event has its place in publication order (`outbox.published_seq`), the same on every
 * replica; live events come in that order, and a resume replays the rows numbered after the
 * resume point's, then goes on live with the events numbered after the last one replayed. So a
 * resume, on any replica, misses nothing and repeats nothing.
 *
 * Flow control: every stream has a bounded queue. The live feed only ever appends to it and never
 * waits, so a client that reads slowly holds up nobody else; once its queue is full the stream
 * ends with RESOURCE_EXHAUSTED (resume to catch up). A stream with nothing to say sends an empty
 * response every `keepaliveMs`, so proxies do not close it as idle; shutdown ends every stream
 * with UNAVAILABLE, so clients resume on another replica.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import { fromStoredPayload } from "../events/events.ts";
import type { LiveEvent, LiveEvents } from "../events/live-events.ts";
import type { ResumePoint, SequencedEvent } from "../events/outbox.repository.ts";
import type { WatchBooksRequest, WatchBooksResponseSchema } from "../gen/petbooks/v1/books_pb.ts";
import type { Logger } from "../logger.ts";
import { isUuid } from "../uuid.ts";
import { throwIfDeadlineExceeded } from "./observed-stream.ts";

/** The retained events, read for a resume (outbox.repository.ts over the process' database). */
export interface WatchReplaySource {
  findResumePoint(eventId: string): Promise<ResumePoint | undefined>;
  eventsAfter(
    afterSeq: number,
    options: { bookIds?: readonly string[] | undefined; limit: number },
  ): Promise<SequencedEvent[]>;
  oldestRetainedAt(): Promise<Date | undefined>;
}

export interface BookWatchOptions {
  /** This process' live events; undefined when it has no event source (WatchBooks then fails). */
  live: LiveEvents | undefined;
  replay: WatchReplaySource;
  /** OUTBOX_RETENTION_HOURS in ms: a resume point older than this is OUT_OF_RANGE. */
  retentionMs: number;
  /** Events a stream may have waiting before it is closed with RESOURCE_EXHAUSTED. */
  queueSize?: number;
  /** An idle stream gets an empty response this often. */
  keepaliveMs?: number;
  /** Most events one resume replays; more is OUT_OF_RANGE (list again). */
  replayLimit?: number;
  /**
   * A stream closed for falling behind whose client still reads nothing this long (so its
   * RESOURCE_EXHAUSTED status cannot even be written) is reset (RST_STREAM ENHANCE_YOUR_CALM,
   * which gRPC clients report as RESOURCE_EXHAUSTED), freeing what it holds.
   */
  stuckMs?: number;
  /** Aborted when the server begins shutting down: every stream ends UNAVAILABLE. */
  shutdown: AbortSignal;
  logger: Logger;
  /** Milliseconds since the epoch (resume points are UUIDv7s, which carry their time). */
  now?: () => number;
}

export const WATCH_DEFAULTS = {
  queueSize: 1000,
  keepaliveMs: 15_000,
  replayLimit: 10_000,
  stuckMs: 10_000,
  maxBookIds: 1000,
} as const;

/** Resets the call's HTTP stream (or HTTP/1.1 connection); set by the server for each call. */
export const RESET_STREAM = createContextKey<(() => void) | undefined>(undefined, {
  description: "resets the call's HTTP stream",
});

type Response = MessageInitShape<typeof WatchBooksResponseSchema>;

export interface BookWatch {
  /** `reset` cuts the call's stream (RESET_STREAM), for a client that stopped reading. */
  stream(
    request: WatchBooksRequest,
    signal: AbortSignal,
    reset?: (() => void) | undefined,
  ): AsyncIterable<Response>;
  /** Streams open now. */
  readonly watchers: number;
}

export const SHUTTING_DOWN =
  "The server is shutting down; reconnect, with resume_after_event_id set to the last event id you saw.";

const invalid = (message: string) => new ConnectError(message, Code.InvalidArgument);

/** The milliseconds in a UUIDv7 (its first 48 bits), or undefined for another version. */
export function uuidV7Millis(id: string): number | undefined {
  if (!isUuid(id) || id[14] !== "7") return undefined;
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

function bookIdsOf(request: WatchBooksRequest): Set<string> | undefined {
  if (request.bookIds.length === 0) return undefined;
  if (request.bookIds.length > WATCH_DEFAULTS.maxBookIds) {
    throw invalid(`book_ids may name at most ${WATCH_DEFAULTS.maxBookIds} books`);
  }
  const bad = request.bookIds.find((id) => !isUuid(id));
  if (bad !== undefined) throw invalid("every book_ids entry must be a UUID");
  return new Set(request.bookIds.map((id) => id.toLowerCase()));
}

export function createBookWatch(options: BookWatchOptions): BookWatch {
  const { live, replay, shutdown, logger } = options;
  const queueSize = options.queueSize ?? WATCH_DEFAULTS.queueSize;
  const keepaliveMs = options.keepaliveMs ?? WATCH_DEFAULTS.keepaliveMs;
  const replayLimit = options.replayLimit ?? WATCH_DEFAULTS.replayLimit;
  const stuckMs = options.stuckMs ?? WATCH_DEFAULTS.stuckMs;
  const now = options.now ?? Date.now;
  let watchers = 0;

  /** Where to resume after `eventId`, or the error that says why it cannot be. */
  const resumePoint = async (eventId: string): Promise<ResumePoint> => {
    if (!isUuid(eventId)) throw invalid("resume_after_event_id must be an event id (a UUID)");
    const point = await replay.findResumePoint(eventId.toLowerCase());
    if (point) return point;
    const millis = uuidV7Millis(eventId.toLowerCase());
    if (millis === undefined)
      throw invalid("resume_after_event_id is not an event id of this service");
    const oldest = await replay.oldestRetainedAt();
    if (millis < now() - options.retentionMs || (oldest && millis < oldest.getTime())) {
      throw new ConnectError(
        "resume_after_event_id is older than the events kept for resuming; list the books again, then watch from now",
        Code.OutOfRange,
      );
    }
    throw invalid("resume_after_event_id is no event this service knows");
  };

  /** The events numbered after `point`, in publication order, or OUT_OF_RANGE for too many. */
  const replayAfter = async (point: ResumePoint, bookIds: Set<string> | undefined) => {
    const found = await replay.eventsAfter(point.seq, {
      bookIds: bookIds && [...bookIds],
      limit: replayLimit + 1,
    });
    if (found.length > replayLimit) {
      throw new ConnectError(
        `more than ${replayLimit} events happened after resume_after_event_id; list the books again, then watch from now`,
        Code.OutOfRange,
      );
    }
    return found.flatMap((row): LiveEvent[] => {
      const event = fromStoredPayload(row.payload);
      return typeof event === "string" ? [] : [{ seq: row.seq, event }];
    });
  };

  async function* stream(
    request: WatchBooksRequest,
    signal: AbortSignal,
    reset?: (() => void) | undefined,
  ) {
    const bookIds = bookIdsOf(request);
    if (!live) {
      throw new ConnectError(
        "WatchBooks needs an event source: this grpc process runs without KAFKA_BROKERS",
        Code.FailedPrecondition,
      );
    }
    const queue: LiveEvent[] = [];
    let failure: ConnectError | undefined;
    let wake: (() => void) | undefined;
    /** True while a response is being written: the generator waits for the client to read. */
    let writing = false;
    /** The stream was reset for reading nothing (RESET_STREAM): its pending write fails. */
    let cut = false;
    let stuckTimer: ReturnType<typeof setTimeout> | undefined;
    const notify = () => {
      const resolve = wake;
      wake = undefined;
      resolve?.();
    };
    // Listening starts before the replay is read, so nothing published meanwhile is missed;
    // what both deliver is dropped from the live side by number.
    const unsubscribe = live.subscribe((item) => {
      if (failure || (bookIds && !bookIds.has(item.event.book?.id ?? ""))) return;
      if (queue.length >= queueSize) {
        failure = new ConnectError(
          `This stream fell more than ${queueSize} events behind and was closed; reconnect, with resume_after_event_id set to the last event id you saw.`,
          Code.ResourceExhausted,
        );
        queue.length = 0;
        stopListening();
        notify();
        // Still writing once the client had this long: it reads nothing at all. Cut the stream.
        stuckTimer = setTimeout(() => {
          if (!writing) return;
          logger.info("WatchBooks stream reset: the client stopped reading", { stuck_ms: stuckMs });
          cut = true;
          reset?.();
        }, stuckMs);
        stuckTimer.unref?.();
        return;
      }
      queue.push(item);
      notify();
    });
    const stopListening = () => unsubscribe();
    signal.addEventListener("abort", notify);
    shutdown.addEventListener("abort", notify);
    watchers += 1;
    try {
      // A feed nobody listened to reads nothing: it moves to where publication stands now before
      // the replay reads up to (at least) there.
      await live.following();
      /** The number of the last event sent (or of the resume point): live ones up to it are old. */
      let sent = 0;
      /** Events the client has although they come later (ResumePoint `skip`). */
      const skip = new Set<string>();
      if (request.resumeAfterEventId !== "") {
        const point = await resumePoint(request.resumeAfterEventId);
        sent = point.seq;
        for (const id of point.skip) skip.add(id);
        for (const { seq, event } of await replayAfter(point, bookIds)) {
          if (shutdown.aborted) throw new ConnectError(SHUTTING_DOWN, Code.Unavailable);
          if (signal.aborted) return throwIfDeadlineExceeded(signal);
          // The live events meanwhile overflowed the queue: the replay is too slow to catch up.
          if (failure) throw failure;
          sent = seq;
          if (skip.delete(event.id)) continue;
          writing = true;
          yield { event };
          writing = false;
        }
      }
      let keepaliveTimer: ReturnType<typeof setTimeout> | undefined;
      try {
        while (true) {
          if (shutdown.aborted) throw new ConnectError(SHUTTING_DOWN, Code.Unavailable);
          if (signal.aborted) return throwIfDeadlineExceeded(signal);
          if (failure) throw failure;
          const item = queue.shift();
          if (item) {
            // Replayed already (or before the resume point): the live copy of an event the
            // replay read.
            if (item.seq <= sent) continue;
            sent = item.seq;
            if (skip.size > 0 && skip.delete(item.event.id)) continue;
            const event = item.event;
            writing = true;
            yield { event };
            writing = false;
            continue;
          }
          let timedOut = false;
          await new Promise<void>((resolve) => {
            wake = resolve;
            keepaliveTimer = setTimeout(() => {
              timedOut = true;
              notify();
            }, keepaliveMs);
          });
          clearTimeout(keepaliveTimer);
          if (timedOut && queue.length === 0 && !failure && !signal.aborted && !shutdown.aborted) {
            writing = true;
            yield {};
            writing = false;
          }
        }
      } finally {
        clearTimeout(keepaliveTimer);
      }
    } catch (err) {
      // The write our reset failed is thrown in here: the call ends as what it is, a stream
      // closed for falling behind, not as an unexpected (INTERNAL) error.
      if (cut && failure) throw failure;
      throw err;
    } finally {
      clearTimeout(stuckTimer);
      watchers -= 1;
      stopListening();
      signal.removeEventListener("abort", notify);
      shutdown.removeEventListener("abort", notify);
      if (failure)
        logger.info("WatchBooks stream closed: the client fell behind", { queue_size: queueSize });
    }
  }

  return {
    stream,
    get watchers() {
      return watchers;
    },
  };
}
