/**
 * WatchBooks end to end in one process, as `dev` wires it: books written through the service,
 * their outbox rows published by the relay to the in-process bus, which feeds the live events;
 * resumes read the same outbox. Clients are Connect's, over a real HTTP/2 connection.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http2 from "node:http2";
import net from "node:net";
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { sql } from "drizzle-orm";
import { createBooksServiceFor } from "../books/books.module.ts";
import type { BooksService } from "../books/books.service.ts";
import { createNoCache } from "../cache/cache.ts";
import { rows } from "../db/rows.ts";
import { createInProcessBus, type InProcessBus } from "../events/bus.ts";
import { type BookEvent, BookEventType, fromEventJson } from "../events/events.ts";
import { createLiveEvents, type LiveEvent, type LiveEvents } from "../events/live-events.ts";
import { maxPublishedSeq, outboxReplay } from "../events/outbox.repository.ts";
import { outboxTailSource } from "../events/outbox-tail.ts";
import { createOutboxRelay, type OutboxRelay } from "../events/relay.ts";
import { testEvent } from "../events/test-events.ts";
import { startWatchFeed, type WatchFeed } from "../events/watch-feed.ts";
import {
  BookService,
  type WatchBooksRequest,
  type WatchBooksResponse,
} from "../gen/petbooks/v1/books_pb.ts";
import { silentLogger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import {
  serverSentStatus,
  startTestGrpcServer,
  type TestGrpcServer,
} from "../testing/grpc-server.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { until } from "../testing/until.ts";
import { createBookWatch, type WatchReplaySource } from "./book-watch.ts";

const DAY_MS = 24 * 3_600_000;
const REPLAY_LIMIT = 20;

let database: TestDatabase;
let bus: InProcessBus;
let live: LiveEvents;
let feed: WatchFeed;
let relay: OutboxRelay;
let books: BooksService;
let server: TestGrpcServer;
/** Resumes wait for this before reading the outbox (a test holds it to race the live feed). */
let replayGate: Promise<void> = Promise.resolve();
/** Replays begun (their resume points read). */
let replaysBegun = 0;
let counter = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  bus = createInProcessBus(silentLogger);
  // As `dev` has it: the bus wakes the outbox tail, which hands the events on.
  feed = await startWatchFeed({
    logger: silentLogger,
    source: outboxTailSource(database.db),
    bus,
    onFatal: () => {},
  });
  live = feed.live as LiveEvents;
  relay = createOutboxRelay({ db: database.db, transport: bus, logger: silentLogger });
  books = createBooksServiceFor({ db: database.db, cache: createNoCache() });
  const replay = outboxReplay(database.db);
  server = await startTestGrpcServer({
    books,
    ping: database.ping,
    watch: {
      live,
      replay: {
        ...replay,
        eventsAfter: async (afterSeq, options) => {
          replaysBegun += 1;
          await replayGate;
          return replay.eventsAfter(afterSeq, options);
        },
      },
      retentionMs: DAY_MS,
      replayLimit: REPLAY_LIMIT,
      keepaliveMs: 60_000,
    },
  });
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await server?.close(1000);
  await feed?.stop();
  await bus?.stop();
  await database?.close();
}, TEARDOWN_TIMEOUT_MS);

/**
 * Publishes what the writes put in the outbox, and, while anyone watches, waits until the live
 * events have it (a feed nobody watches reads nothing).
 */
async function publish() {
  await relay.drain();
  await bus.idle();
  if (live.listeners === 0) return;
  await live.following();
  const published = await maxPublishedSeq(database.db);
  await until("the condition", () => live.lastSeq >= published);
}

function newBook() {
  counter += 1;
  return books.create({ title: `Book ${counter}`, author: "Watcher", published_on: "2001-02-03" });
}

/** Polls `condition`; the test's own timeout bounds the wait. */
/** The servers' `rpc` lines of WatchBooks calls. */
const rpcLines = (logs: Record<string, unknown>[]) =>
  logs.filter((l) => l.msg === "rpc" && l.method === "/petbooks.v1.BookService/WatchBooks");

/** A stream, started; its iterator; and how to hang up. */
async function watch(
  request: { bookIds?: string[]; resumeAfterEventId?: string } = {},
  transport?: Transport,
) {
  const client = transport ? createClient(BookService, transport) : server.client(BookService);
  const hangUp = new AbortController();
  const listeners = live.listeners;
  const stream = client
    .watchBooks(request, { signal: hangUp.signal })
    [Symbol.asyncIterator]() as AsyncIterator<WatchBooksResponse>;
  // The first read sends the call; the server listens before it replays anything.
  const first = stream.next();
  first.catch(() => {});
  let pending: Promise<IteratorResult<WatchBooksResponse>> | undefined = first;
  if (request.resumeAfterEventId === undefined)
    await until("the condition", () => live.listeners > listeners);
  return {
    /** The next `n` events (keepalives skipped). */
    async take(n: number): Promise<BookEvent[]> {
      const events: BookEvent[] = [];
      while (events.length < n) {
        const next = await (pending ?? stream.next());
        pending = undefined;
        if (next.done) throw new Error(`the stream ended after ${events.length} events`);
        if (next.value.event) events.push(next.value.event);
      }
      return events;
    },
    /** The error the stream ends with. */
    async failure(): Promise<ConnectError> {
      try {
        while (true) {
          const next = await (pending ?? stream.next());
          pending = undefined;
          if (next.done) throw new Error("the stream ended without an error");
        }
      } catch (err) {
        await until("the condition", () => live.listeners <= listeners);
        return ConnectError.from(err);
      }
    },
    /** Hangs up, and waits until the server let go of the stream (the next test counts them). */
    async hangUp() {
      hangUp.abort();
      await until("the condition", () => live.listeners <= listeners);
    },
  };
}

describe("WatchBooks live", () => {
  test("delivers create, update and delete of a book in order, as they are published", async () => {
    const watcher = await watch();
    const book = await newBook();
    await books.update(book.id, { title: "Renamed" });
    await books.delete(book.id);
    await publish();
    const events = await watcher.take(3);
    await watcher.hangUp();
    expect(events.map((e) => e.type)).toEqual([
      BookEventType.CREATED,
      BookEventType.UPDATED,
      BookEventType.DELETED,
    ]);
    expect(events.map((e) => e.book?.id)).toEqual([book.id, book.id, book.id]);
    expect(events.map((e) => e.book?.title)).toEqual([book.title, "Renamed", "Renamed"]);
    expect(new Set(events.map((e) => e.id)).size).toBe(3);
  });

  test("follows only the books asked for", async () => {
    const [a, b, c] = [await newBook(), await newBook(), await newBook()];
    await publish();
    const watcher = await watch({ bookIds: [a.id, c.id.toUpperCase()] });
    await books.update(b.id, { title: "b1" });
    await books.update(a.id, { title: "a1" });
    await books.update(b.id, { title: "b2" });
    await books.update(c.id, { title: "c1" });
    await publish();
    const events = await watcher.take(2);
    await watcher.hangUp();
    expect(events.map((e) => e.book?.title)).toEqual(["a1", "c1"]);
  });

  test.each([
    ["not UUIDs", { bookIds: ["nope"] }],
    ["more than 1000 books", { bookIds: Array.from({ length: 1001 }, () => Bun.randomUUIDv7()) }],
  ])("book ids that are %s are INVALID_ARGUMENT", async (_, request) => {
    const watcher = await watch({ ...request, resumeAfterEventId: "" });
    expect((await watcher.failure()).code).toBe(Code.InvalidArgument);
  });

  test("a deadline ends the stream with DEADLINE_EXCEEDED", async () => {
    const call = async () => {
      for await (const _ of server.client(BookService).watchBooks({}, { timeoutMs: 200 })) {
        // keepalives only
      }
    };
    await expect(call()).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    await until("the condition", () => live.listeners === 0);
    // What the server itself sends (the client above enforces its deadline on its own).
    const path = "/petbooks.v1.BookService/WatchBooks";
    const headers = { ...server.bearer, "grpc-timeout": "200m" };
    expect(await serverSentStatus(server.url, path, headers)).toBe(String(Code.DeadlineExceeded));
  });

  test("needs a token, like every BookService call", async () => {
    const client = server.client(BookService, null);
    const call = async () => {
      for await (const _ of client.watchBooks({})) break;
    };
    await expect(call()).rejects.toMatchObject({ code: Code.Unauthenticated });
  });

  test.each([
    ["gRPC", (o: Options) => createGrpcTransport(o)],
    ["gRPC-Web over HTTP/2", (o: Options) => createGrpcWebTransport({ ...o, httpVersion: "2" })],
    [
      "gRPC-Web over HTTP/1.1",
      (o: Options) => createGrpcWebTransport({ ...o, httpVersion: "1.1" }),
    ],
    ["Connect over HTTP/2", (o: Options) => createConnectTransport({ ...o, httpVersion: "2" })],
    ["Connect over HTTP/1.1", (o: Options) => createConnectTransport({ ...o, httpVersion: "1.1" })],
  ])("works over %s", async (_, transport) => {
    const bearer: Interceptor = (next) => (req) => {
      req.header.set("authorization", server.bearer.authorization);
      return next(req);
    };
    const watcher = await watch({}, transport({ baseUrl: server.url, interceptors: [bearer] }));
    const book = await newBook();
    await publish();
    const [event] = await watcher.take(1);
    await watcher.hangUp();
    expect(event?.book?.id).toBe(book.id);
  });
});

type Options = { baseUrl: string; interceptors: Interceptor[] };

describe("WatchBooks resume", () => {
  test("after a disconnect, replays exactly what was missed, then goes on live", async () => {
    const first = await watch();
    const [a, b] = [await newBook(), await newBook()];
    await publish();
    const seen = await first.take(2);
    await first.hangUp();
    // Missed while away.
    await books.update(a.id, { title: "a missed" });
    await books.update(b.id, { title: "b missed" });
    await publish();

    // The resumed stream listens before it reads the outbox; hold the read until an event
    // reached both, so the replay and the live feed overlap.
    const gate = Promise.withResolvers<void>();
    replayGate = gate.promise;
    const listeners = live.listeners;
    const resumed = await watch({ resumeAfterEventId: seen[1]?.id as string });
    await until("the condition", () => live.listeners > listeners);
    await books.update(a.id, { title: "a during the replay" });
    await publish();
    gate.resolve();
    replayGate = Promise.resolve();
    const replayed = await resumed.take(3);
    await books.update(b.id, { title: "b live" });
    await publish();
    const [liveEvent] = await resumed.take(1);
    await resumed.hangUp();
    expect([...replayed, liveEvent].map((e) => e?.book?.title)).toEqual([
      "a missed",
      "b missed",
      "a during the replay",
      "b live",
    ]);
  });

  test("resumes a filtered stream with that filter's events only", async () => {
    const [a, b] = [await newBook(), await newBook()];
    await publish();
    const first = await watch({ bookIds: [a.id] });
    await books.update(a.id, { title: "a1" });
    await publish();
    const [seen] = await first.take(1);
    await first.hangUp();
    await books.update(b.id, { title: "b1" });
    await books.update(a.id, { title: "a2" });
    await publish();
    const resumed = await watch({ bookIds: [a.id], resumeAfterEventId: seen?.id as string });
    const [next] = await resumed.take(1);
    await resumed.hangUp();
    expect(next?.book?.title).toBe("a2");
  });

  test("a resume point older than the retention is OUT_OF_RANGE", async () => {
    // A UUIDv7 from two days ago: its first 48 bits are its time.
    const millis = (Date.now() - 2 * DAY_MS).toString(16).padStart(12, "0");
    const old = `${millis.slice(0, 8)}-${millis.slice(8)}-7abc-8def-0123456789ab`;
    const watcher = await watch({ resumeAfterEventId: old });
    const failure = await watcher.failure();
    expect(failure.code).toBe(Code.OutOfRange);
    expect(failure.rawMessage).toContain("list the books again");
  });

  test("more missed events than one resume replays is OUT_OF_RANGE", async () => {
    const book = await newBook();
    await publish();
    const first = await watch({ bookIds: [book.id] });
    await books.update(book.id, { title: "seen" });
    await publish();
    const [seen] = await first.take(1);
    await first.hangUp();
    for (let i = 0; i <= REPLAY_LIMIT; i++) await books.update(book.id, { title: `missed ${i}` });
    await publish();
    const resumed = await watch({ resumeAfterEventId: seen?.id as string });
    expect((await resumed.failure()).code).toBe(Code.OutOfRange);
  });

  test.each([
    ["an id it never issued", () => Bun.randomUUIDv7()],
    ["not an event id", () => "last-one"],
    ["a UUID of another version", () => crypto.randomUUID()],
  ])("%s is INVALID_ARGUMENT", async (_, id) => {
    const watcher = await watch({ resumeAfterEventId: id() });
    expect((await watcher.failure()).code).toBe(Code.InvalidArgument);
  });
});

describe("the replay of retained events", () => {
  test("is in publication order, after the resume point's number", async () => {
    const replay = outboxReplay(database.db);
    const [a, b] = [await newBook(), await newBook()];
    await publish();
    // One relay batch: both updates are pending when the relay claims.
    await books.update(a.id, { title: "a1" });
    await books.update(b.id, { title: "b1" });
    await publish();
    await books.update(a.id, { title: "a2" });
    await publish();
    const titles = (found: { payload: unknown }[]) =>
      found.map((r) => (fromEventJson(r.payload) as BookEvent).book?.title);
    const after = async (title: string, bookId: string) => {
      const point = await replay.findResumePoint((await lastEventOf(bookId, title)) as string);
      return replay.eventsAfter(point?.seq as number, { limit: 10, bookIds: [a.id, b.id] });
    };
    expect(titles(await after("a1", a.id))).toEqual(["b1", "a2"]);
    expect(titles(await after("b1", b.id))).toEqual(["a2"]);
    expect(titles(await after("a2", a.id))).toEqual([]);
  });

  test("an event not numbered yet counts as not delivered: resume after everything numbered, its book's events up to it left out", async () => {
    const replay = outboxReplay(database.db);
    const [a, b] = [await newBook(), await newBook()];
    await publish();
    const published = await maxPublishedSeq(database.db);
    // Pending: a client has a2 only from an older version (its replay of pending rows, or Kafka
    // before the relay committed), and with it a1 (one book's events come in order).
    await books.update(a.id, { title: "a1" });
    await books.update(b.id, { title: "b1" });
    await books.update(a.id, { title: "a2" });
    const a1 = (await lastEventOf(a.id, "a1")) as string;
    const a2 = (await lastEventOf(a.id, "a2")) as string;
    expect(await replay.findResumePoint(a2)).toEqual({ seq: published, skip: [a1, a2] });

    // The resume point is read before the relay numbers them; the replay after.
    const gate = Promise.withResolvers<void>();
    replayGate = gate.promise;
    const begun = replaysBegun;
    const resumed = await watch({ resumeAfterEventId: a2 });
    await until("the condition", () => replaysBegun > begun);
    await publish();
    gate.resolve();
    replayGate = Promise.resolve();
    await books.update(b.id, { title: "b2" });
    await publish();
    const events = await resumed.take(2);
    await resumed.hangUp();
    // b1 is not skipped, a1 and a2 do not come again.
    expect(events.map((e) => e.book?.title)).toEqual(["b1", "b2"]);
  });
});

/** The id of the event that gave book `bookId` the title `title`. */
async function lastEventOf(bookId: string, title: string): Promise<string | undefined> {
  const found = rows<{ event_id: string }>(
    await database.db.execute(
      sql`select event_id from outbox where aggregate_id = ${bookId}::uuid
        and payload->'book'->>'title' = ${title} order by id desc limit 1`,
    ),
  );
  return found[0]?.event_id;
}

/** Live items with numbers in order, as the outbox tail hands them on. */
let lastSeq = 0;
const numberedItem = (event: BookEvent): LiveEvent => ({ seq: ++lastSeq, event });

describe("WatchBooks flow control and shutdown", () => {
  const unusedReplay: WatchReplaySource = {
    findResumePoint: async () => undefined,
    eventsAfter: async () => [],
    oldestRetainedAt: async () => undefined,
  };
  const request = { bookIds: [], resumeAfterEventId: "" } as unknown as WatchBooksRequest;

  /** A server whose watchers may fall five events behind, and are cut once stuck for 50 ms. */
  const startStuckServer = (live: ReturnType<typeof createLiveEvents>) =>
    startTestGrpcServer({
      watch: {
        live,
        replay: unusedReplay,
        retentionMs: DAY_MS,
        queueSize: 5,
        stuckMs: 50,
        keepaliveMs: 60_000,
      },
    });

  test("a watcher that falls behind is closed with RESOURCE_EXHAUSTED, alone", async () => {
    const events = createLiveEvents({ logger: silentLogger });
    const bookWatch = createBookWatch({
      live: events,
      replay: unusedReplay,
      retentionMs: DAY_MS,
      queueSize: 3,
      keepaliveMs: 60_000,
      shutdown: new AbortController().signal,
      logger: silentLogger,
    });
    const signal = new AbortController().signal;
    const slow = bookWatch.stream(request, signal)[Symbol.asyncIterator]();
    const fast = bookWatch.stream(request, signal)[Symbol.asyncIterator]();
    const slowFirst = slow.next();
    const fastFirst = fast.next();
    await until("the condition", () => events.listeners === 2);
    const sent = Array.from({ length: 10 }, () => testEvent());
    const fastGot: string[] = [];
    for (const [i, event] of sent.entries()) {
      events.publish(numberedItem(event));
      const next = await (i === 0 ? fastFirst : fast.next());
      fastGot.push(next.value?.event?.id);
    }
    // The slow one read the first event, then nothing: three more fit, the fifth did not.
    expect((await slowFirst).value?.event?.id).toBe(sent[0]?.id);
    await expect(slow.next()).rejects.toMatchObject({
      code: Code.ResourceExhausted,
      rawMessage: expect.stringContaining("resume_after_event_id"),
    });
    expect(events.listeners).toBe(1);
    expect(fastGot).toEqual(sent.map((e) => e.id));
    await fast.return?.();
    expect(bookWatch.watchers).toBe(0);
  });

  test("a client that reads nothing at all is cut once it fell behind; the others go on", async () => {
    const events = createLiveEvents({ logger: silentLogger });
    const stuckServer = await startStuckServer(events);
    const session = http2.connect(stuckServer.url);
    try {
      // A raw gRPC call whose client never reads: a paused stream.
      const stuck = session.request({
        ":method": "POST",
        ":path": "/petbooks.v1.BookService/WatchBooks",
        "content-type": "application/grpc",
        te: "trailers",
        authorization: stuckServer.bearer.authorization,
      });
      stuck.end(Buffer.from([0, 0, 0, 0, 0])); // one empty WatchBooksRequest
      stuck.pause();
      const reset = new Promise<number>((resolve) =>
        stuck.on("close", () => resolve(stuck.rstCode ?? -1)),
      );
      stuck.on("error", () => {});
      const good = stuckServer.client(BookService).watchBooks({})[Symbol.asyncIterator]();
      const goodFirst = good.next();
      await until("the condition", () => events.listeners === 2);
      const got: string[] = [];
      const sent: string[] = [];
      // Large events: the client's 64 KiB window and the server's 64 KiB write buffer fill
      // within a dozen, then the five the queue holds, then it is closed.
      for (let i = 0; i < 40; i++) {
        const event = testEvent("book.created", { title: "x".repeat(10_000) });
        sent.push(event.id);
        events.publish(numberedItem(event));
        got.push(
          ((await (i === 0 ? goodFirst : good.next())).value as WatchBooksResponse).event?.id ?? "",
        );
      }
      expect(await reset).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      expect(got).toEqual(sent);
      await good.return?.();
      // The cut call ends on the server too (Bun never settles a write pending on an HTTP/2
      // stream that is only closed): its log line says why, and no error is reported.
      await until("the condition", () => rpcLines(stuckServer.logs).length > 0);
      expect(rpcLines(stuckServer.logs)[0]?.code).toBe("RESOURCE_EXHAUSTED");
      expect(stuckServer.logs.filter((l) => l.level === "error")).toEqual([]);
    } finally {
      session.destroy();
      await stuckServer.close(1000);
    }
  });

  test("over HTTP/1.1, a client that reads nothing is cut the same way, and logged as such", async () => {
    const events = createLiveEvents({ logger: silentLogger });
    const stuckServer = await startStuckServer(events);
    // A raw Connect call over HTTP/1.1 whose client never reads from its socket.
    const socket = net.connect(stuckServer.port, "127.0.0.1");
    try {
      socket.on("error", () => {});
      const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
      const body = Buffer.from([0, 0, 0, 0, 2, 0x7b, 0x7d]); // one {} WatchBooksRequest
      socket.write(
        `POST /petbooks.v1.BookService/WatchBooks HTTP/1.1\r\nHost: x\r\n` +
          `Content-Type: application/connect+json\r\nAuthorization: ${stuckServer.bearer.authorization}\r\n` +
          `Content-Length: ${body.length}\r\n\r\n`,
      );
      socket.write(body);
      socket.pause();
      await until("the condition", () => events.listeners === 1);
      // Events far larger than what the kernel and the server buffer for a socket nobody reads.
      const title = "x".repeat(300_000);
      while (events.listeners > 0) {
        events.publish(numberedItem(testEvent("book.created", { title })));
        await Bun.sleep(1);
      }
      await until("the condition", () => rpcLines(stuckServer.logs).length > 0);
      expect(rpcLines(stuckServer.logs)[0]?.code).toBe("RESOURCE_EXHAUSTED");
      socket.resume(); // reads what the server buffered, up to the end of the connection it cut
      await closed;
      expect(stuckServer.logs.filter((l) => l.level === "error")).toEqual([]);
    } finally {
      socket.destroy();
      await stuckServer.close(1000);
    }
  });

  test("an idle stream gets keepalives: responses without an event", async () => {
    const keepalive = await startTestGrpcServer({
      watch: {
        live: createLiveEvents({ logger: silentLogger }),
        replay: unusedReplay,
        retentionMs: DAY_MS,
        keepaliveMs: 20,
      },
    });
    try {
      const hangUp = new AbortController();
      const responses: WatchBooksResponse[] = [];
      for await (const response of keepalive
        .client(BookService)
        .watchBooks({}, { signal: hangUp.signal })) {
        responses.push(response);
        if (responses.length === 2) break;
      }
      expect(responses.map((r) => r.event)).toEqual([undefined, undefined]);
    } finally {
      await keepalive.close(1000);
    }
  });

  test("shutdown ends every stream with UNAVAILABLE", async () => {
    const events = createLiveEvents({ logger: silentLogger });
    const closing = await startTestGrpcServer({
      watch: { live: events, replay: unusedReplay, retentionMs: DAY_MS },
    });
    const client = closing.client(BookService);
    const streams = [0, 1].map(() => client.watchBooks({})[Symbol.asyncIterator]());
    const firsts = streams.map((s) =>
      s.next().then(
        () => undefined,
        (err) => ConnectError.from(err),
      ),
    );
    await until("the condition", () => events.listeners === 2);
    await closing.close(10_000);
    for (const first of firsts) {
      expect(await first).toMatchObject({ code: Code.Unavailable });
    }
  });

  test("without an event source WatchBooks is FAILED_PRECONDITION", async () => {
    const bookWatch = createBookWatch({
      live: undefined,
      replay: unusedReplay,
      retentionMs: DAY_MS,
      shutdown: new AbortController().signal,
      logger: silentLogger,
    });
    const stream = bookWatch.stream(request, new AbortController().signal);
    await expect(stream[Symbol.asyncIterator]().next()).rejects.toMatchObject({
      code: Code.FailedPrecondition,
    });
  });
});
