import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createBooksServiceFor } from "../books/books.module.ts";
import { createMemoryCache } from "../cache/cache.ts";
import { createLogger, silentLogger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { createInProcessBus } from "./bus.ts";
import { createEventConsumer } from "./consumer.ts";
import { createOutboxRelay } from "./relay.ts";
import { testEvent } from "./test-events.ts";

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
}, SETUP_TIMEOUT_MS);
afterAll(() => database?.close(), SETUP_TIMEOUT_MS);

const event = (title: string) => testEvent("book.created", { title });

describe("in-process bus", () => {
  test("delivers every event in order to every subscriber, after publish returned", async () => {
    const bus = createInProcessBus(silentLogger);
    const first: string[] = [];
    const second: string[] = [];
    bus.subscribe((e) => {
      first.push(e.book?.title ?? "");
    });
    bus.subscribe(async (e) => {
      await Bun.sleep(1);
      second.push(e.book?.title ?? "");
    });
    await bus.publish([event("a"), event("b")]);
    expect(first).toEqual([]); // queued, not delivered inside publish
    await bus.publish([event("c")]);
    await bus.idle();
    expect(first).toEqual(["a", "b", "c"]);
    expect(second).toEqual(["a", "b", "c"]);
  });

  test("a failing subscriber is logged and does not stop the others", async () => {
    const lines: string[] = [];
    const bus = createInProcessBus(createLogger("error", (l) => lines.push(l)));
    const seen: string[] = [];
    bus.subscribe(() => {
      throw new Error("boom");
    });
    bus.subscribe((e) => {
      seen.push(e.book?.title ?? "");
    });
    await bus.publish([event("a"), event("b")]);
    await bus.idle();
    expect(seen).toEqual(["a", "b"]);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain("event subscriber failed");
  });

  test("a subscriber that writes to the database does not deadlock the relay", async () => {
    // On the single-connection embedded database, delivering inside the relay's transaction
    // would make the consumer's insert wait for the relay, and the relay for the consumer.
    const bus = createInProcessBus(silentLogger);
    const lines: string[] = [];
    const consumer = createEventConsumer(
      database.db,
      createLogger("info", (l) => lines.push(l)),
    );
    bus.subscribe((e) => consumer.handleEvent(e));
    const books = createBooksServiceFor({ db: database.db, cache: createMemoryCache(60) });
    await books.create({ title: "Dune", author: "Frank Herbert", published_on: "1965-08-01" });
    const relay = createOutboxRelay({ db: database.db, transport: bus, logger: silentLogger });
    // A deadlock never resolves: the test's timeout, generous for a busy machine, catches it.
    expect(await relay.drain()).toBe(1);
    await bus.idle();
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({ msg: "book event", title: "Dune" }),
    ]);
  }, 60_000);
});
