import {
  afterAll,
  beforeAll,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { sql } from "drizzle-orm";
import { createBooksServiceFor } from "../books/books.module.ts";
import { createBooksRepository } from "../books/books.repository.ts";
import { createMemoryCache } from "../cache/cache.ts";
import { type Database, openDatabase } from "../db/client.ts";
import { rows } from "../db/rows.ts";
import { silentLogger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { capturingLogger } from "../testing/logger.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { until } from "../testing/until.ts";
import { createManualClock, type ManualClock } from "./clock.ts";
import {
  type BookEvent,
  type BookEventJson,
  BookEventType,
  type EventTransport,
  toEventJson,
} from "./events.ts";
import { createFakeKafka } from "./fake-kafka.ts";
import { createKafkaTransport } from "./kafka.ts";
import { countPending } from "./outbox.repository.ts";
import { createOutboxRelay, type OutboxRelay, type RelayOptions } from "./relay.ts";

// Every test works on a real database: room for a busy machine. Nothing here waits on real time.
setDefaultTimeout(60_000);

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
}, SETUP_TIMEOUT_MS);
afterAll(() => database?.close(), SETUP_TIMEOUT_MS);
beforeEach(async () => {
  await database.db.execute(sql`delete from books`);
  await database.db.execute(sql`delete from outbox`);
}, SETUP_TIMEOUT_MS);

/** Records what it is given; fails the next `failures` publishes on demand. */
function testTransport(
  options: { delayMs?: number; timeline?: string[]; hang?: Promise<void> } = {},
) {
  const published: BookEvent[] = [];
  let failures = 0;
  let attempts = 0;
  const transport: EventTransport & {
    published: BookEvent[];
    failNext(n: number): void;
    attempts(): number;
  } = {
    name: "test",
    published,
    async start() {},
    async stop() {},
    failNext(n) {
      failures = n;
    },
    attempts: () => attempts,
    async publish(events) {
      attempts += 1;
      if (options.delayMs) await Bun.sleep(options.delayMs);
      if (options.hang) await options.hang;
      if (failures > 0) {
        failures -= 1;
        throw new Error("broker unavailable");
      }
      published.push(...events);
      options.timeline?.push(...events.map((e) => e.id));
    },
  };
  return transport;
}

const books = () => createBooksServiceFor({ db: database.db, cache: createMemoryCache(60) });

/** The database's own message for a failed query (Drizzle wraps it with the SQL). */
async function failureCause(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => expect.unreachable("the write should have failed"),
    (e: Error) => e,
  );
  return String((err.cause as Error | undefined)?.message ?? err.message);
}

/**
 * By default the relay's waits (publish retries) pass at once on a clock of their own, and its
 * stall check runs once at start and then waits on a clock nobody moves. Tests of the loop give
 * it a clock they step through. No publish deadline unless a test sets one: on a clock whose
 * waits pass at once, it would run out at once.
 */
const relayWith = (transport: EventTransport, options: Partial<RelayOptions> = {}) =>
  createOutboxRelay({
    db: database.db,
    transport,
    logger: silentLogger,
    clock: createManualClock(0, { auto: true }),
    monitorClock: createManualClock(),
    publishTimeoutMs: Number.POSITIVE_INFINITY,
    ...options,
  });

/**
 * A transport whose broker stops answering: its first `unanswered` publishes settle only when the
 * test ends (`release`), so that a relay waiting for one can still be stopped.
 */
function unansweredTransport(unanswered = Number.POSITIVE_INFINITY) {
  const answering = testTransport();
  const released = Promise.withResolvers<void>();
  /** What each publish was given, answered or not. */
  const given: string[][] = [];
  const transport: EventTransport = {
    ...answering,
    publish(events) {
      given.push(events.map((e) => e.id));
      if (given.length <= unanswered) return released.promise;
      return answering.publish(events);
    },
  };
  return { transport, given, published: answering.published, release: released.resolve };
}

/** A relay that checks for a stall every 10 s, stalled at 60 s, retrying every `backoffMs`. */
const stallCheckedRelay = (
  transport: EventTransport,
  options: Partial<RelayOptions>,
  backoffMs: number,
) =>
  relayWith(transport, {
    ...options,
    stallSeconds: 60,
    stallCheckMs: 10_000,
    initialBackoffMs: backoffMs,
    maxBackoffMs: backoffMs,
  });

/** Steps the relay's clock until `done`; fails after `maxTicks` steps rather than spinning. */
async function tickUntil(
  clock: ManualClock,
  done: () => boolean | Promise<boolean>,
  maxTicks = 200,
): Promise<void> {
  for (let i = 0; i < maxTicks; i++) {
    if (await done()) return;
    await clock.tick();
  }
  if (!(await done())) throw new Error(`still not done after ${maxTicks} ticks`);
}

const nothingPending = async () => (await countPending(database.db)) === 0;

/**
 * Runs the relays at once until `published()` reaches `total`. They race for the publication
 * lock, and the one that holds it claims again at once, so one relay could win every batch and
 * the others never publish. A relay that has published while another has not yet waits, after
 * its batch, until that one has ended an attempt begun after the lock was free: every relay
 * claims at least once, the rest of the time they race.
 */
async function raceRelays(relays: OutboxRelay[], published: () => number, total: number) {
  const wins = relays.map(() => 0);
  const started = relays.map(() => 0);
  const ended = relays.map(() => 0);
  await Promise.all(
    relays.map(async (relay, i) => {
      while (published() < total) {
        started[i] = (started[i] as number) + 1;
        const claimed = await relay.runOnce();
        ended[i] = (ended[i] as number) + 1;
        if (claimed === 0) {
          await Bun.sleep(1);
          continue;
        }
        wins[i] = (wins[i] as number) + 1;
        const waiting = wins.findIndex((w, j) => j !== i && w === 0);
        if (waiting === -1) continue;
        const from = started[waiting] as number;
        while ((ended[waiting] as number) <= from && published() < total) await Bun.sleep(1);
      }
    }),
  );
}

const bookTitles = async () =>
  rows<{ title: string }>(await database.db.execute(sql`select title from books`)).map(
    (r) => r.title,
  );
const outboxTypes = async () =>
  rows<{ type: string }>(await database.db.execute(sql`select type from outbox order by id`)).map(
    (r) => r.type,
  );

async function makeChanges(perBook: number, bookCount: number) {
  const service = books();
  for (let b = 0; b < bookCount; b++) {
    const book = await service.create({ title: `t${b}`, author: "a", published_on: "2000-01-01" });
    for (let i = 1; i < perBook; i++) await service.update(book.id, { title: `t${b}.${i}` });
  }
}

describe("outbox relay", () => {
  test("a failed publish leaves every event pending; the next run publishes them once", async () => {
    await makeChanges(2, 3);
    const transport = testTransport();
    const relay = relayWith(transport);
    transport.failNext(3); // the relay's own retry makes 3 attempts per run
    await expect(relay.runOnce()).rejects.toThrow("broker unavailable");
    expect(transport.published).toEqual([]);
    expect(await countPending(database.db)).toBe(6);
    expect(await relay.drain()).toBe(6);
    expect(await countPending(database.db)).toBe(0);
    expect(new Set(transport.published.map((e) => e.id)).size).toBe(6);
  });

  test("a transient failure is retried within the run", async () => {
    await makeChanges(1, 2);
    const transport = testTransport();
    transport.failNext(2);
    const relay = relayWith(transport);
    expect(await relay.runOnce()).toBe(2);
    expect(transport.attempts()).toBe(3);
  });

  test("publishes in commit order, in batches", async () => {
    await makeChanges(3, 4);
    const transport = testTransport();
    const relay = relayWith(transport, {
      batchSize: 5,
    });
    expect(await relay.runOnce()).toBe(5);
    expect(await relay.drain()).toBe(7);
    const ids = rows<{ event_id: string }>(
      await database.db.execute(sql`select event_id from outbox order by id`),
    );
    expect(transport.published.map((e) => e.id)).toEqual(ids.map((r) => r.event_id));
  });

  test.each(["book.created", "book.updated", "book.deleted"] as const)(
    "when its %s event cannot be written, the change is rolled back",
    async (type) => {
      const service = books();
      const existing = await service.create({
        title: "t",
        author: "a",
        published_on: "2000-01-01",
      });
      // The outbox refuses this one type of event, as a full disk or a dropped connection would.
      await database.db.execute(
        sql.raw(
          `alter table outbox add constraint refuse_event check (type <> '${type}') not valid`,
        ),
      );
      try {
        const change =
          type === "book.created"
            ? service.create({ title: "new", author: "a", published_on: "2000-01-01" })
            : type === "book.updated"
              ? service.update(existing.id, { title: "changed" })
              : service.delete(existing.id);
        expect(await failureCause(change)).toContain('constraint "refuse_event"');
      } finally {
        await database.db.execute(sql`alter table outbox drop constraint refuse_event`);
      }
      expect(await bookTitles()).toEqual(["t"]);
      expect(await outboxTypes()).toEqual(["book.created"]);
    },
  );

  test("a book insert that fails writes no event", async () => {
    const existing = await books().create({ title: "t", author: "a", published_on: "2000-01-01" });
    const duplicate = { id: existing.id, title: "again", author: "a", publishedOn: "2000-01-01" };
    const event: BookEventJson = {
      id: Bun.randomUUIDv7(),
      type: "book.created",
      occurred_at: new Date().toISOString(),
      book: { ...existing, title: "again" },
    };
    const insert = createBooksRepository(database.db).insert(duplicate, event);
    expect(await failureCause(insert)).toContain('unique constraint "books_pkey"');
    expect(await bookTitles()).toEqual(["t"]);
    expect(await outboxTypes()).toEqual(["book.created"]);
  });

  test("while the broker is down the loop backs off, doubling up to the cap, then catches up", async () => {
    const clock = createManualClock();
    const { logger, lines } = capturingLogger();
    const transport = testTransport();
    const relay = relayWith(transport, {
      clock,
      logger,
      idleMs: 500,
      initialBackoffMs: 1_000,
      maxBackoffMs: 4_000,
    });
    transport.failNext(1_000_000);
    relay.start();
    await makeChanges(1, 3); // writes succeed while the broker is down
    // Four failed runs of three attempts each.
    await tickUntil(clock, () => transport.attempts() >= 12);
    // The publish retries wait 50-120 ms; the runs' backoffs are the long waits.
    expect(clock.requested.filter((ms) => ms >= 1_000)).toEqual([1_000, 2_000, 4_000, 4_000]);
    expect(await countPending(database.db)).toBe(3);
    expect(relay.health()).toMatchObject({ consecutiveFailures: 4 });

    transport.failNext(0);
    await tickUntil(clock, nothingPending);
    await relay.stop();
    expect(transport.published).toHaveLength(3);
    expect(relay.health()).toMatchObject({ consecutiveFailures: 0 });
    // One warning when the outage began, one line when it ended; the rest at debug.
    const relayLines = lines.filter((l) => String(l.msg).startsWith("event relay"));
    expect(relayLines.filter((l) => l.level !== "debug")).toEqual([
      expect.objectContaining({ level: "warn", msg: "event relay failed; events stay pending" }),
      expect.objectContaining({ level: "info", msg: "event relay recovered", failed_runs: 4 }),
    ]);
    expect(lines.filter((l) => l.level === "error")).toEqual([]);
  });

  test("a publish without an answer by the deadline is rolled back; backoff, then the next run publishes", async () => {
    await makeChanges(1, 2);
    const clock = createManualClock();
    const { logger, lines } = capturingLogger();
    const { transport, given, published, release } = unansweredTransport(1);
    const relay = relayWith(transport, {
      clock,
      logger,
      publishTimeoutMs: 15_000,
      initialBackoffMs: 1_000,
      idleMs: 60_000,
    });
    relay.start();
    try {
      await until("the first publish", () => given.length === 1);
      expect(clock.pending()).toEqual([15_000]); // the deadline, and nothing else
      expect(await clock.tick()).toBe(15_000);
      // The transaction rolled back: nothing marked, and the run's backoff follows at once (no
      // retry within the run, which would hold the publication lock for another deadline).
      expect(clock.pending()).toEqual([1_000]);
      expect(given).toHaveLength(1);
      expect(await countPending(database.db)).toBe(2);
      expect(relay.health()).toMatchObject({ consecutiveFailures: 1 });
      expect(lines.filter((l) => l.level === "warn")).toEqual([
        expect.objectContaining({
          msg: "event relay failed; events stay pending",
          err: expect.objectContaining({
            name: "PublishTimeoutError",
            message: "publish to test: no answer within 15000 ms",
          }),
        }),
      ]);
      await tickUntil(clock, nothingPending);
    } finally {
      release(); // without a deadline, the relay would still be waiting for it
      await relay.stop();
    }
    expect(given[1]).toEqual(given[0] as string[]);
    expect(published.map((e) => e.id)).toEqual(given[0] as string[]);
    expect(relay.health()).toMatchObject({ consecutiveFailures: 0 });
  });

  test("a nudge publishes without waiting for the poll interval", async () => {
    const clock = createManualClock();
    const transport = testTransport();
    const relay = relayWith(transport, { clock, idleMs: 60_000 });
    relay.start();
    await clock.sleeping();
    expect(clock.pending()).toEqual([60_000]); // nothing to do: polling again in a minute
    await makeChanges(1, 1);
    relay.nudge();
    await clock.sleeping();
    expect(clock.pending()).toEqual([5]); // woken at once, lingering for more writes
    await clock.tick();
    await relay.stop();
    expect(transport.published).toHaveLength(1);
    expect(clock.now()).toBe(5);
  });

  test("a nudge does not cut a backoff short", async () => {
    const clock = createManualClock();
    const transport = testTransport();
    const relay = relayWith(transport, { clock, initialBackoffMs: 1_000, idleMs: 60_000 });
    transport.failNext(3);
    await makeChanges(1, 1);
    relay.start();
    await tickUntil(clock, () => transport.attempts() >= 3);
    expect(clock.pending()).toEqual([1_000]);
    relay.nudge(); // a write during the outage
    expect(clock.pending()).toEqual([1_000]);
    await relay.stop();
  });

  /** A relay that keeps a day, cleaning up at once: one run, then the cleanup, then the idle wait. */
  const cleanOnce = async (options: Partial<RelayOptions>) => {
    const clock = createManualClock();
    const cleaner = relayWith(testTransport(), {
      clock,
      retentionHours: 24,
      cleanupEveryMs: 0,
      ...options,
    });
    cleaner.start();
    await clock.sleeping();
    await cleaner.stop();
  };

  test("published events are deleted after the retention period", async () => {
    await makeChanges(1, 2);
    const relay = relayWith(testTransport());
    await relay.drain();
    await database.db.execute(sql`update outbox set published_at = now() - interval '2 days'
      where id = (select min(id) from outbox)`);
    await cleanOnce({ idleMs: 10 });
    const left = rows<{ n: number }>(
      await database.db.execute(sql`select count(*)::int as n from outbox`),
    );
    expect(left[0]?.n).toBe(1);
  });

  test("a cleanup keeps deleting batches until the expired events are gone", async () => {
    await makeChanges(1, 25);
    await relayWith(testTransport()).drain();
    // The 22 oldest expired, the 3 newest are within the retention: six batches of 4 to go.
    await database.db.execute(sql`update outbox set published_at = now() - interval '2 days'
      where id <= (select min(id) + 21 from outbox)`);
    await cleanOnce({ cleanupBatchSize: 4, idleMs: 60_000 });
    expect(await bookTitles()).toHaveLength(25);
    expect(await outboxTypes()).toHaveLength(3);
  });
});

/** Each row's event id and number, in publication-number order (unnumbered rows last). */
const numbered = async () =>
  rows<{ id: number | string; event_id: string; published_seq: number | string | null }>(
    await database.db.execute(
      sql`select id, event_id, published_seq from outbox order by published_seq nulls last, id`,
    ),
  ).map((r) => ({
    id: Number(r.id),
    eventId: r.event_id,
    seq: r.published_seq === null ? null : Number(r.published_seq),
  }));

describe("publication numbers (published_seq)", () => {
  test("each published event gets one number; in id order within a batch, growing across batches", async () => {
    await makeChanges(3, 4);
    const transport = testTransport();
    const relay = relayWith(transport, { batchSize: 5 });
    expect(await relay.drain()).toBe(12);
    const all = await numbered();
    expect(all.every((r) => r.seq !== null)).toBe(true);
    expect(new Set(all.map((r) => r.seq)).size).toBe(12);
    // Number order is id order (one relay) and the order the transport got them in.
    expect(all.map((r) => r.id)).toEqual([...all.map((r) => r.id)].sort((a, b) => a - b));
    expect(transport.published.map((e) => e.id)).toEqual(all.map((r) => r.eventId));
  });

  test("a failed publish gives out no number that sticks", async () => {
    await makeChanges(1, 3);
    const transport = testTransport();
    const relay = relayWith(transport);
    transport.failNext(3);
    await expect(relay.runOnce()).rejects.toThrow("broker unavailable");
    expect((await numbered()).map((r) => r.seq)).toEqual([null, null, null]);
    expect(await relay.drain()).toBe(3);
    const seqs = (await numbered()).map((r) => r.seq as number);
    // Rolled-back attempts leave gaps, never a repeat, and the numbers still grow in id order.
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(3);
  });

  test("rows an older relay published without numbers are numbered first, in (published_at, id) order, and not published again", async () => {
    await makeChanges(1, 6);
    // An older version's relay published the first three (rolling upgrade): published_at set,
    // no number; its clock made the later ids the earlier publications.
    await database.db.execute(sql`
      update outbox set published_at = now() - (id * interval '1 second')
      where id in (select id from outbox order by id limit 3)`);
    const stragglers = rows<{ event_id: string }>(
      await database.db.execute(
        sql`select event_id from outbox where published_at is not null order by published_at, id`,
      ),
    ).map((r) => r.event_id);
    const transport = testTransport();
    const relay = relayWith(transport);
    expect(await relay.drain()).toBe(3);
    const all = await numbered();
    expect(all.every((r) => r.seq !== null)).toBe(true);
    expect(all.slice(0, 3).map((r) => r.eventId)).toEqual(stragglers);
    expect(transport.published.map((e) => e.id)).toEqual(all.slice(3).map((r) => r.eventId));
  });

  test("stragglers are numbered even when nothing is pending", async () => {
    await makeChanges(1, 2);
    await database.db.execute(sql`update outbox set published_at = now()`);
    const transport = testTransport();
    expect(await relayWith(transport).runOnce()).toBe(0);
    expect((await numbered()).every((r) => r.seq !== null)).toBe(true);
    expect(transport.published).toEqual([]);
  });
});

describe("outbox rows of every version", () => {
  test("a row an older version wrote is published as the protobuf event it describes", async () => {
    // Exactly what versions before the protobuf contract stored (and still store: the outbox
    // keeps the JSON form, so old and new relays can share it during a rolling upgrade).
    const old: BookEventJson = {
      id: Bun.randomUUIDv7(),
      type: "book.deleted",
      occurred_at: "2026-11-23T22:21:34.567Z",
      book: {
        id: Bun.randomUUIDv7(),
        title: "Dune",
        author: "Frank Herbert",
        published_on: "1965-08-01",
        created_at: "2026-11-20T10:00:00Z",
        updated_at: "2026-11-23T22:21:34Z",
      },
    };
    await database.db.execute(sql`insert into outbox (event_id, aggregate_id, type, payload)
      values (${old.id}::uuid, ${old.book.id}::uuid, ${old.type}, ${JSON.stringify(old)}::json)`);
    const transport = testTransport();
    expect(await relayWith(transport).drain()).toBe(1);
    const [event] = transport.published;
    expect(event && toEventJson(event)).toEqual(old);
    expect(event?.type).toBe(BookEventType.DELETED);
  });

  test("a row that is no event is logged and skipped; the rows after it still go out", async () => {
    const { lines, logger } = capturingLogger();
    await database.db.execute(sql`insert into outbox (event_id, aggregate_id, type, payload)
      values (${Bun.randomUUIDv7()}::uuid, ${Bun.randomUUIDv7()}::uuid, 'book.created',
        '{"hello":"world"}'::json)`);
    await books().create({ title: "After", author: "a", published_on: "2000-01-01" });
    const transport = testTransport();
    expect(await relayWith(transport, { logger }).drain()).toBe(2);
    expect(transport.published.map((e) => e.book?.title)).toEqual(["After"]);
    expect(lines).toContainEqual(
      expect.objectContaining({ level: "error", msg: "outbox row is not a book event; skipped" }),
    );
    expect(await countPending(database.db)).toBe(0);
  });
});

describe("outbox stall check", () => {
  /** The pending events were written `minutes` ago (the check reads the database's clock). */
  const age = (minutes: number) =>
    database.db.execute(
      sql`update outbox set created_at = now() - make_interval(mins => ${minutes})
        where published_at is null`,
    );
  const stallLines = (lines: Record<string, unknown>[]) =>
    lines.filter((l) => l.msg === "outbox stalled: events are not being published");

  test("one error line per stalled interval, however often the relay retries", async () => {
    const clock = createManualClock();
    const monitorClock = createManualClock();
    const { logger, lines } = capturingLogger();
    const transport = testTransport();
    transport.failNext(1_000_000);
    await makeChanges(1, 2);
    await age(2);
    const relay = stallCheckedRelay(transport, { clock, monitorClock, logger }, 100);
    relay.start();
    await monitorClock.sleeping(); // the first check is done
    expect(relay.health()).toMatchObject({ status: "stalled", stallSeconds: 60 });
    expect(relay.health().oldestPendingSeconds).toBeGreaterThanOrEqual(120);

    // 150 s of checks every 10 s, and 20 failed runs of the relay in between.
    for (let i = 0; i < 15; i++) {
      await monitorClock.tick();
      await tickUntil(clock, () => transport.attempts() >= 4 * (i + 1));
    }
    expect(transport.attempts()).toBeGreaterThanOrEqual(60);
    // At 0 s, 60 s and 120 s; nothing else at error level.
    expect(stallLines(lines)).toHaveLength(3);
    expect(lines.filter((l) => l.level === "error")).toEqual(stallLines(lines));
    expect(stallLines(lines)[0]).toMatchObject({
      level: "error",
      stall_seconds: 60,
      transport: "test",
      producer_recreations: 0,
    });
    expect(Number(stallLines(lines)[0]?.oldest_pending_seconds)).toBeGreaterThanOrEqual(120);
    expect(lines.filter((l) => l.level === "warn")).toHaveLength(1);

    transport.failNext(0);
    await tickUntil(clock, nothingPending);
    await monitorClock.tick();
    expect(relay.health()).toMatchObject({ status: "ok", oldestPendingSeconds: null });
    expect(lines.filter((l) => l.msg === "outbox no longer stalled")).toEqual([
      expect.objectContaining({ level: "info", stalled_for_seconds: 160 }),
    ]);
    await relay.stop();
    expect(stallLines(lines)).toHaveLength(3);
  });

  test("young pending events are not a stall", async () => {
    const monitorClock = createManualClock();
    const { logger, lines } = capturingLogger();
    const transport = testTransport();
    transport.failNext(1_000_000);
    await makeChanges(1, 1);
    const relay = relayWith(transport, {
      clock: createManualClock(),
      monitorClock,
      logger,
      stallSeconds: 3_600,
    });
    relay.start();
    await monitorClock.sleeping();
    expect(relay.health().status).toBe("ok");
    expect(relay.health().oldestPendingSeconds).toBeLessThan(3_600);
    await relay.stop();
    expect(stallLines(lines)).toEqual([]);
  });

  test("a lost ack: a new producer gets every event through, each book's in order", async () => {
    const fake = createFakeKafka({ partitions: 3 });
    const { logger, lines } = capturingLogger();
    const transport = createKafkaTransport({
      brokers: ["kafka:9092"],
      topic: "petbooks.books",
      logger,
      kafka: fake.kafka,
      startAttempts: 1,
    });
    await transport.start();
    const clock = createManualClock();
    const monitorClock = createManualClock();
    const relay = stallCheckedRelay(transport, { clock, monitorClock, logger }, 1_000);
    const service = books();
    const dune = await service.create({ title: "Dune", author: "a", published_on: "1965-08-01" });
    const emma = await service.create({ title: "Emma", author: "b", published_on: "1815-12-23" });
    await service.update(dune.id, { title: "Dune I" });

    // The broker stores the first batch, its ack is lost, and it stays away.
    fake.loseNextAck();
    relay.start();
    const failedRuns = () =>
      lines.filter((l) => l.msg === "event relay failed; events stay pending").length;
    await tickUntil(clock, () => failedRuns() >= 3);
    expect(fake.records()).toHaveLength(3); // stored, although the relay could not know
    // Writes go on: the next batch will be larger than the stored one.
    await service.update(dune.id, { title: "Dune II" });
    await service.delete(emma.id);
    const hermes = await service.create({
      title: "Hermes",
      author: "c",
      published_on: "2000-01-01",
    });
    await age(2);
    for (let i = 0; i < 7; i++) await monitorClock.tick(); // 70 s: stalled at 10 s and 70 s
    await tickUntil(clock, () => failedRuns() >= 6);

    fake.setAvailable(true);
    await tickUntil(clock, nothingPending);
    await monitorClock.tick();
    await relay.stop();
    await transport.stop();

    // The old producer's resend was refused once; the new one's first send got through.
    expect(fake.journal.filter((j) => j.includes("OUT_OF_ORDER"))).toHaveLength(1);
    expect(fake.journal.filter((j) => j.includes("connect pid"))).toEqual([
      "producer#1 connect pid=1000",
      "producer#2 connect pid=1001",
    ]);
    expect(transport.stats().producerRecreations).toBe(1);
    expect(relay.health()).toMatchObject({ status: "ok", producerRecreations: 1 });

    // Every event, each book's in the order written, whatever the copies of the stored batch.
    const written = rows<{ event_id: string; aggregate_id: string }>(
      await database.db.execute(sql`select event_id, aggregate_id from outbox order by id`),
    );
    expect(written).toHaveLength(6);
    const delivered = fake.firstDeliveriesByKey();
    for (const book of [dune.id, emma.id, hermes.id]) {
      expect(delivered.get(book)).toEqual(
        written.filter((w) => w.aggregate_id === book).map((w) => w.event_id),
      );
    }
    expect(fake.records().length).toBeGreaterThan(6); // the copies consumers drop

    // Two stall intervals, two error lines; kafkajs noise and retries stay below error.
    expect(lines.filter((l) => l.level === "error")).toEqual([
      expect.objectContaining({ msg: "outbox stalled: events are not being published" }),
      expect.objectContaining({ msg: "outbox stalled: events are not being published" }),
    ]);
    expect(lines.filter((l) => l.msg === "outbox no longer stalled")).toHaveLength(1);
    expect(lines.filter((l) => String(l.msg).startsWith("Kafka producer replaced"))).toEqual([
      expect.objectContaining({ reason: "OUT_OF_ORDER_SEQUENCE_NUMBER", producer_recreations: 1 }),
    ]);
  });
});

describe.skipIf(!process.env.DATABASE_URL)("several relays on PostgreSQL", () => {
  // The embedded database runs one statement at a time, so there the check waits for the
  // relay's transaction; PostgreSQL answers it while the publish hangs.
  test("a publish that hangs does not silence the stall check", async () => {
    const release = Promise.withResolvers<void>();
    const transport = testTransport({ hang: release.promise });
    const monitorClock = createManualClock();
    const { logger, lines } = capturingLogger();
    await makeChanges(1, 1);
    await database.db.execute(sql`update outbox set created_at = now() - interval '5 minutes'`);
    const relay = relayWith(transport, {
      clock: createManualClock(),
      monitorClock,
      logger,
      stallSeconds: 60,
      stallCheckMs: 10_000,
    });
    relay.start();
    await monitorClock.sleeping();
    for (let i = 0; i < 12; i++) await monitorClock.tick();
    expect(transport.attempts()).toBe(1); // still in its first publish
    expect(lines.filter((l) => l.level === "error")).toHaveLength(3); // at 0, 60 and 120 s
    expect(relay.health().status).toBe("stalled");
    release.resolve();
    await tickUntil(monitorClock, nothingPending);
    await relay.stop();
  });

  test("each event is published once, and each book's events in order", async () => {
    await makeChanges(8, 20);
    const url = database.url as string;
    const connections = await Promise.all(
      [1, 2, 3].map(() => openDatabase({ databaseUrl: url, poolSize: 2 }, silentLogger)),
    );
    // Every relay appends to one timeline, in the order the publishes complete.
    const timeline: string[] = [];
    const transports = connections.map(() => testTransport({ delayMs: 2, timeline }));
    const relays = connections.map((c, i) =>
      createOutboxRelay({
        db: c.db,
        transport: transports[i] as EventTransport,
        logger: silentLogger,
        batchSize: 7,
      }),
    );
    try {
      // Each relay keeps claiming until everything is out (a fully blocked batch claims nothing);
      // the test's timeout bounds it.
      await raceRelays(relays, () => timeline.length, 160);
      expect(timeline).toHaveLength(160);
      expect(new Set(timeline).size).toBe(160);
      expect(transports.filter((t) => t.published.length > 0).length).toBeGreaterThan(1);
      const written = rows<{ event_id: string; aggregate_id: string }>(
        await database.db.execute(sql`select event_id, aggregate_id from outbox order by id`),
      );
      const byBook = new Map<string, string[]>();
      for (const w of written)
        byBook.set(w.aggregate_id, [...(byBook.get(w.aggregate_id) ?? []), w.event_id]);
      for (const writeOrder of byBook.values()) {
        const publishOrder = [...writeOrder].sort(
          (a, b) => timeline.indexOf(a) - timeline.indexOf(b),
        );
        expect(publishOrder).toEqual(writeOrder);
      }
    } finally {
      await Promise.all(connections.map((c) => c.close()));
    }
  });
  test("a relay that cannot take the publication lock claims nothing, at once", async () => {
    await makeChanges(1, 4);
    const url = database.url as string;
    const connections = await Promise.all(
      [1, 2].map(() => openDatabase({ databaseUrl: url, poolSize: 2 }, silentLogger)),
    );
    const release = Promise.withResolvers<void>();
    const hanging = testTransport({ hang: release.promise });
    const free = testTransport();
    const [first, second] = connections.map((c, i) =>
      createOutboxRelay({
        db: c.db,
        transport: i === 0 ? hanging : free,
        logger: silentLogger,
        batchSize: 2,
      }),
    ) as [ReturnType<typeof createOutboxRelay>, ReturnType<typeof createOutboxRelay>];
    try {
      const held = first.runOnce();
      while (hanging.attempts() === 0) await Bun.sleep(1);
      // The first relay holds the lock inside its publish: the second returns, claiming
      // nothing, while the first still hangs (it would hang too if it waited for the lock).
      expect(await second.runOnce()).toBe(0);
      expect(free.attempts()).toBe(0);
      expect(await countPending(database.db)).toBe(4);
      release.resolve();
      expect(await held).toBe(2);
      expect(await second.runOnce()).toBe(2);
      const all = await numbered();
      expect(all.map((r) => r.eventId)).toEqual([
        ...hanging.published.map((e) => e.id),
        ...free.published.map((e) => e.id),
      ]);
    } finally {
      release.resolve();
      await Promise.all(connections.map((c) => c.close()));
    }
  });

  test("a publish past its deadline frees the publication lock: another replica's relay publishes the batch", async () => {
    await makeChanges(1, 3);
    const url = database.url as string;
    const connections = await Promise.all(
      [1, 2].map(() => openDatabase({ databaseUrl: url, poolSize: 2 }, silentLogger)),
    );
    const [one, two] = connections as [Database, Database];
    const broker = unansweredTransport();
    const clock = createManualClock();
    const stuck = createOutboxRelay({
      db: one.db,
      transport: broker.transport,
      logger: silentLogger,
      clock,
      monitorClock: createManualClock(),
      publishTimeoutMs: 15_000,
    });
    const otherTransport = testTransport();
    const other = createOutboxRelay({
      db: two.db,
      transport: otherTransport,
      logger: silentLogger,
    });
    try {
      stuck.start();
      await until("the first publish", () => broker.given.length === 1);
      expect(clock.pending()).toEqual([15_000]);
      // Until the deadline, the stuck relay holds the publication lock: the other claims nothing.
      expect(await other.runOnce()).toBe(0);
      expect(otherTransport.attempts()).toBe(0);

      await clock.tick();
      expect(stuck.health()).toMatchObject({ status: "ok", consecutiveFailures: 1 });
      expect(await countPending(database.db)).toBe(3);
      expect(await other.runOnce()).toBe(3);
      expect(otherTransport.published.map((e) => e.id)).toEqual(broker.given[0] as string[]);
      const all = await numbered();
      expect(all.map((r) => r.eventId)).toEqual(broker.given[0] as string[]);
      expect(all.every((r) => r.seq !== null)).toBe(true);
      expect(stuck.health().consecutiveFailures).toBe(1);
    } finally {
      broker.release();
      await stuck.stop();
      await Promise.all(connections.map((c) => c.close()));
    }
  });

  test("a relay locked out claims again after lockedOutRetryMs, not after the idle poll", async () => {
    await makeChanges(1, 2);
    const url = database.url as string;
    const connections = await Promise.all(
      [1, 2].map(() => openDatabase({ databaseUrl: url, poolSize: 2 }, silentLogger)),
    );
    const release = Promise.withResolvers<void>();
    const hanging = testTransport({ hang: release.promise });
    const clock = createManualClock();
    const [holder, standby] = connections.map((c, i) =>
      createOutboxRelay({
        db: c.db,
        transport: i === 0 ? hanging : testTransport(),
        logger: silentLogger,
        idleMs: 500,
        lockedOutRetryMs: 50,
        ...(i === 1 && { clock, monitorClock: createManualClock() }),
      }),
    ) as [ReturnType<typeof createOutboxRelay>, ReturnType<typeof createOutboxRelay>];
    try {
      const held = holder.runOnce();
      while (hanging.attempts() === 0) await Bun.sleep(1);
      standby.start();
      await clock.sleeping();
      expect(clock.pending()).toEqual([50]);
      await clock.tick();
      expect(clock.pending()).toEqual([50]); // still locked out: claims again as soon
      release.resolve();
      expect(await held).toBe(2);
    } finally {
      release.resolve();
      await standby.stop();
      await Promise.all(connections.map((c) => c.close()));
    }
  });

  test("relays publishing at once: one number per event, number order is publication order, none waits for the lock", async () => {
    await makeChanges(4, 30);
    const url = database.url as string;
    const connections = await Promise.all(
      [1, 2].map(() => openDatabase({ databaseUrl: url, poolSize: 2 }, silentLogger)),
    );
    const timeline: string[] = [];
    const transports = connections.map(() => testTransport({ delayMs: 1, timeline }));
    const relays = connections.map((c, i) =>
      createOutboxRelay({
        db: c.db,
        transport: transports[i] as EventTransport,
        logger: silentLogger,
        batchSize: 6,
      }),
    );
    // Anyone waiting on an advisory lock shows in pg_stat_activity; sampled throughout.
    let waits = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [row] = rows<{ n: number | string }>(
          await database.db.execute(sql`select count(*) as n from pg_stat_activity
            where wait_event_type = 'Lock' and wait_event = 'advisory'
              and datname = current_database()`),
        );
        waits += Number(row?.n ?? 0);
        await Bun.sleep(1);
      }
    })();
    try {
      await raceRelays(relays, () => timeline.length, 120);
    } finally {
      sampling = false;
      await sampler;
      await Promise.all(connections.map((c) => c.close()));
    }
    expect(timeline).toHaveLength(120);
    expect(transports.every((t) => t.published.length > 0)).toBe(true);
    const all = await numbered();
    expect(new Set(all.map((r) => r.seq)).size).toBe(120);
    expect(all.every((r) => r.seq !== null)).toBe(true);
    // Publications never overlap (one relay at a time holds the lock while it publishes), so the
    // order the transports completed them in is the number order.
    expect(all.map((r) => r.eventId)).toEqual(timeline);
    expect(waits).toBe(0);
  });
});
