import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { rows } from "../db/rows.ts";
import { type BookEvent, type BookEventJson, changeOf } from "../events/events.ts";
import { createTestApp, jsonRequest, readJson, type TestApp } from "../testing/app.ts";
import { caseInit, type HttpCase } from "../testing/http-cases.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { BOOKS_CASES } from "./books.cases.ts";
import { BOOK_NOT_FOUND } from "./books.model.ts";
import {
  BookPatchSchema,
  ListBooksQuerySchema,
  listBooksParameters,
  NewBookSchema,
} from "./books.schemas.ts";

let t: TestApp;
let auth: { headers: { authorization: string } };
let counter = 0;

beforeAll(async () => {
  t = await createTestApp();
  await t.request(
    "/auth/register",
    jsonRequest("POST", { username: "reader", password: "long password" }),
  );
  const token = await readJson(
    t.request(
      "/auth/token",
      jsonRequest("POST", {
        grant_type: "password",
        username: "reader",
        password: "long password",
      }),
    ),
  );
  auth = { headers: { authorization: `Bearer ${token.access_token}` } };
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.close(), SETUP_TIMEOUT_MS);
beforeEach(async () => {
  await t.database.db.execute(sql`delete from books`);
  await t.database.db.execute(sql`delete from outbox`);
}, SETUP_TIMEOUT_MS);

/** A request with the bearer token (and a JSON body when given). */
function call(path: string, method = "GET", body?: unknown) {
  const init = body === undefined ? { method } : jsonRequest(method, body);
  return t.request(path, { ...init, headers: { ...(init.headers as object), ...auth.headers } });
}

function newBook(overrides: Record<string, unknown> = {}) {
  counter += 1;
  return {
    title: `Book ${counter}`,
    author: `Author ${counter % 3}`,
    published_on: "2001-02-03",
    ...overrides,
  };
}

async function create(overrides: Record<string, unknown> = {}) {
  const res = await call("/books", "POST", newBook(overrides));
  expect(res.status).toBe(201);
  return readJson(res);
}

async function outboxEvents(): Promise<BookEventJson[]> {
  const result = await t.database.db.execute(sql`select payload from outbox order by id`);
  return rows<{ payload: BookEventJson | string }>(result).map((r) =>
    typeof r.payload === "string" ? JSON.parse(r.payload) : r.payload,
  );
}

describe("books CRUD", () => {
  test("create answers the book and writes one book.created event", async () => {
    const res = await call("/books", "POST", {
      title: "  Dune ",
      author: " Frank Herbert ",
      published_on: "1965-08-01",
    });
    expect(res.status).toBe(201);
    const book = await readJson(res);
    expect(Object.keys(book)).toEqual([
      "id",
      "title",
      "author",
      "published_on",
      "created_at",
      "updated_at",
    ]);
    expect(book).toMatchObject({
      title: "Dune",
      author: "Frank Herbert",
      published_on: "1965-08-01",
    });
    expect(book.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    const events = await outboxEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: "book.created", book });
    expect(events[0]?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.parse(events[0]?.occurred_at as string)).not.toBeNaN();
  });

  test("get, replace, patch and delete, each write with one event in order", async () => {
    const book = await create();
    expect(await readJson(call(`/books/${book.id}`))).toEqual(book);

    const replaced = await readJson(
      call(`/books/${book.id}`, "PUT", {
        title: "New",
        author: "Someone",
        published_on: "1999-12-31",
      }),
    );
    expect(replaced).toMatchObject({
      id: book.id,
      title: "New",
      author: "Someone",
      published_on: "1999-12-31",
      created_at: book.created_at,
    });
    expect(await readJson(call(`/books/${book.id}`))).toEqual(replaced);

    const patched = await readJson(call(`/books/${book.id}`, "PATCH", { author: "Another" }));
    expect(patched).toMatchObject({ title: "New", author: "Another", published_on: "1999-12-31" });
    expect(await readJson(call(`/books/${book.id}`))).toEqual(patched);

    const deleted = await call(`/books/${book.id}`, "DELETE");
    expect(deleted.status).toBe(204);
    expect(await deleted.text()).toBe("");
    expect((await call(`/books/${book.id}`)).status).toBe(404);

    const events = await outboxEvents();
    expect(events.map((e) => e.type)).toEqual([
      "book.created",
      "book.updated",
      "book.updated",
      "book.deleted",
    ]);
    expect(events[3]?.book).toEqual(patched); // the last state
    expect(new Set(events.map((e) => e.id)).size).toBe(4);
  });

  test.each([
    ["GET", undefined],
    ["PUT", newBook()],
    ["PATCH", { title: "x" }],
    ["DELETE", undefined],
  ])("%s of an unknown or malformed id is 404 and writes no event", async (method, body) => {
    for (const id of [Bun.randomUUIDv7(), "not-a-uuid", "1;drop table books"]) {
      const res = await call(`/books/${encodeURIComponent(id)}`, method, body);
      expect(res.status).toBe(404);
      expect((await readJson(res)).detail).toBe(BOOK_NOT_FOUND);
    }
    expect(await outboxEvents()).toEqual([]);
  });

  test("put needs every field", async () => {
    const book = await create();
    expect((await call(`/books/${book.id}`, "PUT", { title: "only a title" })).status).toBe(422);
  });

  test("a patch names its problem: nothing to change, or a field it does not take", async () => {
    const book = await create();
    const empty = await readJson(call(`/books/${book.id}`, "PATCH", {}));
    expect(empty.errors).toEqual([
      { path: "/", message: "give at least one of title, author, published_on" },
    ]);
    const unknown = await readJson(call(`/books/${book.id}`, "PATCH", { title: "ok", x: 1 }));
    expect(unknown.errors).toHaveLength(1);
    expect(unknown.errors[0].path).toBe("/x");
    expect(unknown.errors[0].message).not.toContain("give at least one");
  });

  test("leap days are real dates", async () => {
    expect((await call("/books", "POST", newBook({ published_on: "2024-02-29" }))).status).toBe(
      201,
    );
  });
});

describe("GET /books", () => {
  test("an empty page is 200 with []", async () => {
    expect(await readJson(call("/books"))).toEqual({ count: 0, items: [] });
    await create();
    expect(await readJson(call("/books?offset=10"))).toEqual({ count: 1, items: [] });
  });

  test("answers the bytes JSON.stringify writes for the books as created", async () => {
    // Quotes, a backslash, non-ASCII, a character outside the BMP, U+2028, markup.
    const older = await create({ title: 'The "Quoted" \\ Book é 🐕 \u2028 </script>' });
    const newer = await create({ author: "Ünïcødé ñame", published_on: "1999-12-31" });
    for (const path of ["/books", `/books?author=${encodeURIComponent(newer.author)}`]) {
      const items = path === "/books" ? [newer, older] : [newer];
      const res = await call(path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/json;charset=utf-8");
      expect(await res.text()).toBe(JSON.stringify({ count: items.length, items }));
    }
  });

  test("newest first, paged, with an exact count", async () => {
    const ids = [];
    for (let i = 0; i < 25; i++) ids.push((await create()).id);
    const first = await readJson(call("/books"));
    expect(first.count).toBe(25);
    expect(first.items).toHaveLength(20);
    const second = await readJson(call("/books?limit=20&offset=20"));
    expect([...first.items, ...second.items].map((b: { id: string }) => b.id)).toEqual(
      ids.reverse(),
    );
  });

  test("filters by exact author and searches titles without regard to case", async () => {
    await create({ title: "The Dispossessed", author: "Ursula K. Le Guin" });
    await create({ title: "The Left Hand of Darkness", author: "Ursula K. Le Guin" });
    await create({ title: "Dune", author: "Frank Herbert" });
    await create({ title: "100% Pure_Fun", author: "Anon" });
    const byAuthor = await readJson(
      call(`/books?author=${encodeURIComponent("Ursula K. Le Guin")}`),
    );
    expect(byAuthor.count).toBe(2);
    expect(await readJson(call("/books?author=ursula"))).toMatchObject({ count: 0 });
    const search = await readJson(call("/books?q=DARK"));
    expect(search.items.map((b: { title: string }) => b.title)).toEqual([
      "The Left Hand of Darkness",
    ]);
    // LIKE wildcards in q are literal characters.
    expect((await readJson(call("/books?q=%25"))).count).toBe(1);
    expect((await readJson(call("/books?q=_"))).count).toBe(1);
  });

  test("every write is visible to the next read, through the cache", async () => {
    const book = await create({ title: "Cached" });
    // Fill the cache for the book and for the list page.
    expect((await readJson(call(`/books/${book.id}`))).title).toBe("Cached");
    expect((await readJson(call("/books"))).count).toBe(1);
    await call(`/books/${book.id}`, "PATCH", { title: "Changed" });
    expect((await readJson(call(`/books/${book.id}`))).title).toBe("Changed");
    expect((await readJson(call("/books"))).items[0].title).toBe("Changed");
    await create();
    expect((await readJson(call("/books"))).count).toBe(2);
    await call(`/books/${book.id}`, "DELETE");
    expect((await call(`/books/${book.id}`)).status).toBe(404);
    expect((await readJson(call("/books"))).count).toBe(1);
  });
});

describe("events reach the in-process bus through the relay", () => {
  test("in commit order, each once", async () => {
    const seen: BookEvent[] = [];
    const unsubscribe = t.bus.subscribe((e) => {
      seen.push(e);
    });
    const book = await create();
    await call(`/books/${book.id}`, "PATCH", { title: "Again" });
    await call(`/books/${book.id}`, "DELETE");
    expect(await t.services.relay.drain()).toBe(3);
    expect(await t.services.relay.drain()).toBe(0);
    await t.bus.idle();
    unsubscribe();
    expect(seen.map((e) => changeOf(e.type))).toEqual([
      "book.created",
      "book.updated",
      "book.deleted",
    ]);
    const pending = rows<{ n: number }>(
      await t.database.db.execute(
        sql`select count(*)::int as n from outbox where published_at is null`,
      ),
    );
    expect(pending[0]?.n).toBe(0);
  });
});

describe("input", () => {
  test("a NUL in a search is 422, not a database error", async () => {
    const res = await call("/books?q=%00");
    expect(res.status).toBe(422);
    expect((await readJson(res)).errors).toEqual([
      { path: "/q", message: "q must not contain the NUL character (U+0000)" },
    ]);
  });

  test("titles and authors count characters: 300 emoji are a title", async () => {
    const title = "📚".repeat(300);
    expect((await create({ title, author: "✍".repeat(200) })).title).toBe(title);
    const res = await call("/books", "POST", newBook({ title: `${title}x` }));
    expect((await readJson(res)).errors).toEqual([
      { path: "/title", message: "title must be 1 to 300 characters long" },
    ]);
  });

  test.each([
    ["POST and PUT", NewBookSchema],
    ["PATCH", BookPatchSchema],
  ])("the %s body has no defaults to fill in", (_, schema) => {
    expect(JSON.stringify(schema)).not.toContain('"default"');
  });

  test("the list query the docs show is the one the route reads", () => {
    expect(Object.keys(ListBooksQuerySchema.properties)).toEqual(Object.keys(listBooksParameters));
  });
});

/** The same cases the contract suite sends to the compiled binary (see books.cases.ts). */
describe.each(Object.entries(BOOKS_CASES))("%s cases", (_, cases) => {
  test.each(cases.map((c): [string, HttpCase] => [c.name, c]))("%s", async (_, c) => {
    const book = c.request.path.includes("{book}") ? await create() : undefined;
    const { path, init } = caseInit(c.request, { book: book?.id }, auth.headers);
    const res = await t.request(path, { ...init, apiKey: null });
    const text = await res.text();
    if (res.status !== c.expectedStatus) {
      throw new Error(`expected ${c.expectedStatus}, got ${res.status}: ${text.slice(0, 300)}`);
    }
    if (c.expectedStatus < 400) return;
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    const problem = JSON.parse(text);
    expect(problem).toMatchObject({ type: "about:blank", status: c.expectedStatus });
    expect(problem.request_id).toBe(res.headers.get("x-request-id"));
    if (c.errorPath) {
      expect(problem.errors.map((e: { path: string }) => e.path)).toContain(c.errorPath);
    }
    if (c.allow) expect(res.headers.get("allow")).toBe(c.allow);
  });
});
