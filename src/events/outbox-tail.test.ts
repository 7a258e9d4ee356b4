/**
 * The outbox tail on a source the test controls (which rows are "committed"), and a clock the
 * test steps: what it hands on, when it reads again, and that what woke it does not change what
 * it hands on.
 */
import { describe, expect, test } from "bun:test";
import { silentLogger } from "../logger.ts";
import { createManualClock } from "./clock.ts";
import { toEventJson } from "./events.ts";
import { createLiveEvents } from "./live-events.ts";
import type { SequencedEvent } from "./outbox.repository.ts";
import { createOutboxTail, type OutboxTailSource } from "./outbox-tail.ts";
import { testEvent } from "./test-events.ts";

/** Committed rows, in number order; reads can be held at a gate. */
function fakeSource(initial: SequencedEvent[] = []) {
  const committed = [...initial];
  let gate: Promise<void> | undefined;
  let inFlight = 0;
  let maxInFlight = 0;
  const source: OutboxTailSource & {
    commit(...events: ReturnType<typeof testEvent>[]): string[];
    hold(): () => void;
    readonly maxInFlight: number;
  } = {
    async maxSeq() {
      return committed.at(-1)?.seq ?? 0;
    },
    async eventsAfter(afterSeq, limit) {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        await gate;
        return committed.filter((r) => r.seq > afterSeq).slice(0, limit);
      } finally {
        inFlight -= 1;
      }
    },
    commit(...events) {
      for (const event of events) {
        // Gaps, as rolled-back relay transactions leave them.
        const seq = (committed.at(-1)?.seq ?? 0) + 3;
        committed.push({ seq, eventId: event.id, payload: toEventJson(event) });
      }
      return events.map((e) => e.id);
    },
    hold() {
      const { promise, resolve } = Promise.withResolvers<void>();
      gate = promise;
      return () => {
        gate = undefined;
        resolve();
      };
    },
    get maxInFlight() {
      return maxInFlight;
    },
  };
  return source;
}

function tailOn(
  source: OutboxTailSource,
  options: { pollMs?: number; batchSize?: number; listening?: boolean } = {},
) {
  const clock = createManualClock();
  const live = createLiveEvents({ logger: silentLogger, follow: () => tail.follow() });
  const got: { seq: number; id: string }[] = [];
  const listen = () => live.subscribe((item) => got.push({ seq: item.seq, id: item.event.id }));
  if (options.listening !== false) listen();
  const tail = createOutboxTail({
    source,
    live,
    logger: silentLogger,
    clock,
    pollMs: options.pollMs ?? 1000,
    retryMs: 10,
    ...(options.batchSize && { batchSize: options.batchSize }),
  });
  return { clock, tail, live, listen, got, ids: () => got.map((g) => g.id) };
}

describe("outbox tail", () => {
  test("reads nothing while nobody listens; the next listener gets what comes after it follows", async () => {
    const source = fakeSource();
    const { clock, tail, live, listen, ids } = tailOn(source, { listening: false });
    await tail.start();
    await clock.sleeping();
    const readsIdle = tail.reads;
    source.commit(testEvent(), testEvent());
    tail.wake();
    await clock.tick(); // the poll interval passes too
    expect(tail.reads).toBe(readsIdle);
    listen();
    await live.following();
    const later = source.commit(testEvent());
    tail.wake();
    while (ids().length < 1) await clock.tick();
    expect(ids()).toEqual(later);
    await tail.stop();
  });

  test("starts from now, and hands on what is numbered later in number order, in full reads", async () => {
    const source = fakeSource();
    source.commit(testEvent(), testEvent());
    const { clock, tail, got, ids } = tailOn(source, { batchSize: 2 });
    await tail.start();
    await clock.sleeping();
    const later = source.commit(testEvent(), testEvent(), testEvent(), testEvent(), testEvent());
    tail.wake();
    while (got.length < 5) await clock.tick();
    expect(ids()).toEqual(later);
    expect(got.map((g) => g.seq)).toEqual([9, 12, 15, 18, 21]);
    await tail.stop();
  });

  test("a wake-up before the relay's commit still delivers after it, within the short backoff", async () => {
    const source = fakeSource();
    const { clock, tail, ids } = tailOn(source);
    await tail.start();
    await clock.sleeping();
    const event = testEvent();
    // The relay handed the event to Kafka; its transaction has not committed yet.
    tail.wake([event.id]);
    await clock.sleeping();
    await clock.tick(); // 10 ms: read again, still nothing
    await clock.tick(); // 20 ms
    expect(ids()).toEqual([]);
    source.commit(event);
    let waited = 30;
    while (ids().length === 0) waited += await clock.tick();
    expect(ids()).toEqual([event.id]);
    // Read on the backoff (10, 20, 40 ms), long before the 1 s poll would have.
    expect(waited).toBeLessThan(1000);
    expect(clock.requested.slice(1, 4)).toEqual([10, 20, 40]);
    await tail.stop();
  });

  test("ids that never show up (copies of old events) end in the periodic poll", async () => {
    const source = fakeSource();
    const old = testEvent();
    source.commit(old);
    const { clock, tail, ids } = tailOn(source);
    await tail.start();
    await clock.sleeping();
    tail.wake([old.id]); // a copy on the topic: handed on before (or before this tail started)
    for (let i = 0; i < 8; i++) await clock.tick();
    expect(clock.requested).toEqual([1000, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    expect(ids()).toEqual([]);
    await tail.stop();
  });

  test("the poll finds what nothing announced", async () => {
    const source = fakeSource();
    const { clock, tail, ids } = tailOn(source);
    await tail.start();
    await clock.sleeping();
    const missed = source.commit(testEvent()); // its record never came (a skipped offset)
    expect(await clock.tick()).toBe(1000);
    expect(ids()).toEqual(missed);
    await tail.stop();
  });

  test("one read at a time; wake-ups during a read cause one more read, not one each", async () => {
    const source = fakeSource();
    const { clock, tail, ids } = tailOn(source);
    await tail.start();
    await clock.sleeping();
    const release = source.hold();
    tail.wake();
    await Bun.sleep(0);
    const readsBefore = tail.reads;
    const committed = source.commit(testEvent(), testEvent());
    for (const id of committed) tail.wake([id]);
    tail.wake();
    release();
    await clock.sleeping();
    expect(source.maxInFlight).toBe(1);
    // The held read (it saw the rows: committed before it ran) and one more for the wake-ups.
    expect(tail.reads - readsBefore).toBe(1);
    expect(ids()).toEqual(committed);
    await tail.stop();
  });

  test("a copy of a record wakes the tail but hands nothing on twice", async () => {
    const source = fakeSource();
    const { clock, tail, ids } = tailOn(source);
    await tail.start();
    await clock.sleeping();
    const [id] = source.commit(testEvent());
    tail.wake([id as string]);
    while (ids().length === 0) await clock.tick();
    tail.wake([id as string]); // the relay's resend after a lost acknowledgement
    for (let i = 0; i < 3; i++) await clock.tick();
    expect(ids()).toEqual([id as string]);
    await tail.stop();
  });
});
