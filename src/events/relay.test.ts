import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createBooksRepository } from "../books/books.repository.ts";
import { createBooksService } from "../books/books.service.ts";
import { createMemoryCache } from "../cache/cache.ts";
import { openDatabase } from "../db/client.ts";
import { rows } from "../db/rows.ts";
import { silentLogger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import type { BookEvent, EventTransport } from "./events.ts";
import { countPending } from "./outbox.repository.ts";
import { createOutboxRelay, type RelayOptions } from "./relay.ts";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await database.db.execute(sql`delete from books`);
  await database.db.execute(sql`delete from outbox`);
});

/** Records what it is given; fails the next `failures` publishes on demand. */
function testTransport(options: { delayMs?: number; timeline?: string[] } = {}) {
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

const books = () => createBooksService({ db: database.db, cache: createMemoryCache(60) });

/** The database's own message for a failed query (Drizzle wraps it with the SQL). */
async function failureCause(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => expect.unreachable("the write should have failed"),
    (e: Error) => e,
  );
  return String((err.cause as Error | undefined)?.message ?? err.message);
}

const relayWith = (transport: EventTransport, options: Partial<RelayOptions> = {}) =>
  createOutboxRelay({ db: database.db, transport, logger: silentLogger, ...options });

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
    for (let i = 1; i < perBook; i++) await service.patch(book.id, { title: `t${b}.${i}` });
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
              ? service.patch(existing.id, { title: "changed" })
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
    const event: BookEvent = {
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

  test("the loop keeps trying with backoff while the broker is down, then catches up", async () => {
    const transport = testTransport();
    const relay = relayWith(transport, {
      idleMs: 20,
      initialBackoffMs: 10,
      maxBackoffMs: 40,
    });
    transport.failNext(1_000_000);
    relay.start();
    await makeChanges(1, 3); // writes succeed while the broker is down
    await Bun.sleep(300);
    const attemptsWhileDown = transport.attempts();
    expect(attemptsWhileDown).toBeGreaterThan(3);
    expect(attemptsWhileDown).toBeLessThan(100); // backing off, not spinning
    expect(await countPending(database.db)).toBe(3);
    transport.failNext(0);
    for (let i = 0; i < 50 && (await countPending(database.db)) > 0; i++) await Bun.sleep(20);
    await relay.stop();
    expect(transport.published).toHaveLength(3);
  });

  test("a nudge publishes without waiting for the poll interval", async () => {
    const transport = testTransport();
    const relay = relayWith(transport, {
      idleMs: 60_000,
    });
    relay.start();
    await Bun.sleep(50);
    await makeChanges(1, 1);
    relay.nudge();
    for (let i = 0; i < 50 && transport.published.length === 0; i++) await Bun.sleep(10);
    await relay.stop();
    expect(transport.published).toHaveLength(1);
  });

  test("published events are deleted after the retention period", async () => {
    await makeChanges(1, 2);
    const relay = relayWith(testTransport());
    await relay.drain();
    await database.db.execute(sql`update outbox set published_at = now() - interval '2 days'
      where id = (select min(id) from outbox)`);
    const cleaner = relayWith(testTransport(), {
      retentionHours: 24,
      cleanupEveryMs: 0,
      idleMs: 10,
    });
    cleaner.start();
    await Bun.sleep(100);
    await cleaner.stop();
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
    const cleaner = relayWith(testTransport(), {
      retentionHours: 24,
      cleanupEveryMs: 0,
      cleanupBatchSize: 4,
      idleMs: 60_000,
    });
    cleaner.start();
    for (let i = 0; i < 100 && (await outboxTypes()).length > 3; i++) await Bun.sleep(10);
    await cleaner.stop();
    expect(await bookTitles()).toHaveLength(25);
    expect(await outboxTypes()).toHaveLength(3);
  });
});

describe.skipIf(!process.env.DATABASE_URL)("several relays on PostgreSQL", () => {
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
      // Each relay keeps claiming until everything is out (a fully blocked batch claims nothing).
      const deadline = Date.now() + 20_000;
      await Promise.all(
        relays.map(async (relay) => {
          while (timeline.length < 160 && Date.now() < deadline) {
            if ((await relay.runOnce()) === 0) await Bun.sleep(1);
          }
        }),
      );
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
});
