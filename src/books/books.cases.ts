/**
 * Bad (and barely good) input for every books route, as data: books.http.test.ts runs these
 * cases in-process and test/contract/http-input.contract.test.ts against the compiled binary.
 * Runners send them with a bearer token unless a case is `anonymous`, and replace `{book}` with
 * the id of a fresh book.
 */
import { PAGING_QUERIES } from "../pets/pets.cases.ts";
import {
  bytes,
  type CaseBody,
  emoji,
  type HttpCase,
  json,
  jsonOfSize,
  MiB,
  multipart,
  streamed,
  wrongMethod,
} from "../testing/http-cases.ts";
import { AUTHOR_MAX_LENGTH, SEARCH_MAX_LENGTH, TITLE_MAX_LENGTH } from "./books.model.ts";

const JSON_TYPE = { "content-type": "application/json" };
const UNKNOWN_ID = "0193a8f2-6d1e-7c3a-9b1e-5f2d8c4a7e10";

const book = (fields: Record<string, unknown>) => ({
  title: "Dune",
  author: "Frank Herbert",
  published_on: "1965-08-01",
  ...fields,
});

type Body = { headers?: Record<string, string>; body: () => CaseBody };

const overJsonLimit = jsonOfSize(MiB + 1, { author: "a", published_on: "2000-01-01" }, "title");
const atJsonLimit = jsonOfSize(MiB, { author: "a", published_on: "2000-01-01" }, "title");
const hugeJson = (size: number) =>
  jsonOfSize(size, { author: "a", published_on: "2000-01-01" }, "title");

/** The body cases every JSON route of books shares: parsing, content types and size. */
function bodyCases(method: string, path: string): HttpCase[] {
  const send = (name: string, body: Body, expectedStatus: number, errorPath?: string) => ({
    name,
    request: { method, path, ...body },
    expectedStatus,
    ...(errorPath && { errorPath }),
  });
  return [
    send("malformed JSON", json('{"title": "a",'), 400),
    send("an empty body", json(""), 400),
    send("bytes that are not UTF-8", bytes(new Uint8Array([0x7b, 0xff, 0x7d]), JSON_TYPE), 400),
    send("a list", json([]), 422),
    send("null", json("null"), 422),
    send("a number", json("7"), 422),
    send("__proto__", json('{"title":"x","__proto__":{"author":"a"}}'), 422, "/__proto__"),
    send("the title twice", json('{"title":"a","title":"b"}'), 422, "/title"),
    send("text/plain", json(book({}), { "content-type": "text/plain" }), 415),
    send("a form", json("title=a", { "content-type": "application/x-www-form-urlencoded" }), 415),
    send("no content type", bytes(new TextEncoder().encode(JSON.stringify(book({})))), 415),
    send("multipart", multipart([["title", "a"]]), 415),
    send(
      "exactly 1 MiB (read, then too long a title)",
      bytes(atJsonLimit, JSON_TYPE),
      422,
      "/title",
    ),
    send("exactly 1 MiB, streamed", streamed(atJsonLimit, JSON_TYPE), 422, "/title"),
    send("1 MiB + 1 byte with its Content-Length", bytes(overJsonLimit, JSON_TYPE), 413),
    send("1 MiB + 1 byte, streamed", streamed(overJsonLimit, JSON_TYPE), 413),
    send("9 MiB, streamed", streamed(hugeJson(9 * MiB), JSON_TYPE), 413),
    send("11.5 MiB, streamed", streamed(hugeJson(11.5 * MiB), JSON_TYPE), 413),
  ];
}

/** Field cases for a body with every field (POST, PUT): `ok` is the success status. */
function fullBodyCases(method: string, path: string, ok: number): HttpCase[] {
  const send = (name: string, body: unknown, expectedStatus: number, errorPath?: string) => ({
    name,
    request: { method, path, ...json(body) },
    expectedStatus,
    ...(errorPath && { errorPath }),
  });
  const good = (name: string, fields: Record<string, unknown>) => send(name, book(fields), ok);
  const bad = (name: string, fields: Record<string, unknown> | string, errorPath?: string) =>
    send(name, typeof fields === "string" ? fields : book(fields), 422, errorPath);
  return [
    good("a book", {}),
    good(`a ${TITLE_MAX_LENGTH}-character title`, { title: "t".repeat(TITLE_MAX_LENGTH) }),
    good(`${TITLE_MAX_LENGTH} emoji as title`, { title: emoji(TITLE_MAX_LENGTH) }),
    good("a padded title", { title: `   ${"t".repeat(TITLE_MAX_LENGTH)}   ` }),
    good(`a ${AUTHOR_MAX_LENGTH}-character author`, { author: "a".repeat(AUTHOR_MAX_LENGTH) }),
    good(`${AUTHOR_MAX_LENGTH} emoji as author`, { author: emoji(AUTHOR_MAX_LENGTH) }),
    good("a leap day", { published_on: "2024-02-29" }),
    good("the first day of year 1", { published_on: "0001-01-01" }),
    good("the last day of year 9999", { published_on: "9999-12-31" }),
    send("no title", { author: "a", published_on: "2000-01-01" }, 422, "/title"),
    send("no author", { title: "t", published_on: "2000-01-01" }, 422, "/author"),
    send("no published_on", { title: "t", author: "a" }, 422, "/published_on"),
    send("an empty object", {}, 422),
    bad("title null", { title: null }, "/title"),
    bad("author null", { author: null }, "/author"),
    bad("published_on null", { published_on: null }, "/published_on"),
    bad("an empty title", { title: "" }, "/title"),
    bad("a blank title", { title: "   " }, "/title"),
    bad(`a ${TITLE_MAX_LENGTH + 1}-character title`, { title: "t".repeat(301) }, "/title"),
    bad(`${TITLE_MAX_LENGTH + 1} emoji as title`, { title: emoji(301) }, "/title"),
    bad("a blank author", { author: "\t" }, "/author"),
    bad(`a ${AUTHOR_MAX_LENGTH + 1}-character author`, { author: "a".repeat(201) }, "/author"),
    bad(`${AUTHOR_MAX_LENGTH} emoji and a letter`, { author: `${emoji(200)}a` }, "/author"),
    bad("a NUL in the title", { title: "a\u0000b" }, "/title"),
    bad("a NUL in the author", { author: "\u0000" }, "/author"),
    bad(
      "an unpaired surrogate",
      '{"title":"\\udc00","author":"a","published_on":"2000-01-01"}',
      "/title",
    ),
    bad("a numeric title", { title: 1 }, "/title"),
    bad("a list as author", { author: ["a"] }, "/author"),
    bad("a day that does not exist", { published_on: "2023-02-29" }, "/published_on"),
    bad("month 13", { published_on: "2023-13-01" }, "/published_on"),
    bad("year 0", { published_on: "0000-01-01" }, "/published_on"),
    bad("a datetime", { published_on: "2023-01-01T00:00:00Z" }, "/published_on"),
    bad("a short date", { published_on: "2023-1-1" }, "/published_on"),
    bad("a padded date", { published_on: " 2023-01-01" }, "/published_on"),
    bad("a numeric date", { published_on: 20230101 }, "/published_on"),
    bad("an empty date", { published_on: "" }, "/published_on"),
    bad("an unknown field", { isbn: "x" }, "/isbn"),
    bad("a field named constructor", { constructor: "x" }, "/constructor"),
  ];
}

function patchCases(path: string): HttpCase[] {
  const send = (name: string, body: unknown, expectedStatus: number, errorPath?: string) => ({
    name,
    request: { method: "PATCH", path, ...json(body) },
    expectedStatus,
    ...(errorPath && { errorPath }),
  });
  return [
    send("only a title", { title: "New" }, 200),
    send("only an author of 200 emoji", { author: emoji(AUTHOR_MAX_LENGTH) }, 200),
    send("only a date", { published_on: "1999-12-31" }, 200),
    send("an empty body", {}, 422),
    send("only an unknown field", { isbn: "x" }, 422, "/isbn"),
    send("a blank author", { author: "  " }, 422, "/author"),
    send("a title of 301 emoji", { title: emoji(301) }, 422, "/title"),
    send("a NUL in the title", { title: "\u0000" }, 422, "/title"),
    send("title null", { title: null }, 422, "/title"),
    send("an impossible date", { published_on: "2021-04-31" }, 422, "/published_on"),
  ];
}

/** Long queries are named by their start and length. */
const queryName = (q: string) =>
  q.length > 60 ? `?${q.slice(0, 40)}… (${q.length} chars)` : `?${q}`;

const query = (q: string, expectedStatus: number, errorPath?: string): HttpCase => ({
  name: queryName(q),
  request: { method: "GET", path: `/books?${q}` },
  expectedStatus,
  ...(errorPath && { errorPath }),
});

export const LIST_BOOKS_CASES: HttpCase[] = [
  query("", 200),
  ...PAGING_QUERIES.map(([q, status, path]) => query(q, status, path)),
  query(`author=${encodeURIComponent("Ursula K. Le Guin")}`, 200),
  query(`author=${"a".repeat(AUTHOR_MAX_LENGTH)}`, 200),
  query(`author=${encodeURIComponent(emoji(AUTHOR_MAX_LENGTH))}`, 200),
  query(`author=${"a".repeat(AUTHOR_MAX_LENGTH + 1)}`, 422, "/author"),
  query(`author=${encodeURIComponent(emoji(AUTHOR_MAX_LENGTH + 1))}`, 422, "/author"),
  query("author=a%00b", 422, "/author"),
  query("author=a&author=b", 422, "/author"),
  query("q=dune", 200),
  query("q=", 200),
  query("q=%25_", 200),
  query(`q=${encodeURIComponent(emoji(SEARCH_MAX_LENGTH))}`, 200),
  query(`q=${"q".repeat(SEARCH_MAX_LENGTH + 1)}`, 422, "/q"),
  query("q=%00", 422, "/q"),
  query("q=a%00", 422, "/q"),
  query("q=a&q=b", 422, "/q"),
  query("q=%FF", 200),
  query("q=%", 200),
  query("isbn=1", 422, "/isbn"),
];

const byId = (method: string, path: string, expectedStatus: number): HttpCase => ({
  name: `${method} ${path}`,
  request: { method, path },
  expectedStatus,
});

export const BOOK_BY_ID_CASES: HttpCase[] = [
  byId("GET", "/books/{book}", 200),
  byId("GET", `/books/${UNKNOWN_ID}`, 404),
  byId("GET", "/books/not-a-uuid", 404),
  byId("GET", "/books/%00", 404),
  byId("DELETE", "/books/{book}", 204),
  byId("DELETE", `/books/${UNKNOWN_ID}`, 404),
  byId("DELETE", "/books/not-a-uuid", 404),
  {
    name: `PUT /books/${UNKNOWN_ID}`,
    request: { method: "PUT", path: `/books/${UNKNOWN_ID}`, ...json(book({})) },
    expectedStatus: 404,
  },
  {
    name: "PATCH /books/not-a-uuid",
    request: { method: "PATCH", path: "/books/not-a-uuid", ...json({ title: "x" }) },
    expectedStatus: 404,
  },
];

const WRONG_CREDENTIALS: [string, Record<string, string>][] = [
  ["no token", {}],
  ["an empty bearer token", { authorization: "Bearer " }],
  ["a bearer token that is no JWT", { authorization: "Bearer nope" }],
  ["a forged JWT", { authorization: "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl" }],
  ["basic credentials", { authorization: "Basic dXNlcjpwYXNzd29yZA==" }],
  ["the API key instead", { "x-api-key": "contract-api-key-0123456789" }],
];

/** Without a valid bearer token every route is 401, whatever else is wrong with the request. */
export const BOOKS_AUTH_CASES: HttpCase[] = WRONG_CREDENTIALS.flatMap(([who, headers]) => {
  const anonymous = (name: string, request: HttpCase["request"]): HttpCase => ({
    name: `${who}: ${name}`,
    request: { ...request, anonymous: true, headers: { ...request.headers, ...headers } },
    expectedStatus: 401,
  });
  return [
    anonymous("GET /books", { method: "GET", path: "/books" }),
    anonymous("GET /books?limit=0&q=%00", { method: "GET", path: "/books?limit=0&q=%00" }),
    anonymous("POST /books", { method: "POST", path: "/books", ...json(book({})) }),
    anonymous("POST /books, malformed", { method: "POST", path: "/books", ...json("{") }),
    anonymous("POST /books, invalid", { method: "POST", path: "/books", ...json({ title: "" }) }),
    anonymous("POST /books as text/plain", {
      method: "POST",
      path: "/books",
      ...json(book({}), { "content-type": "text/plain" }),
    }),
    anonymous("POST /books over the limit", {
      method: "POST",
      path: "/books",
      ...bytes(overJsonLimit, JSON_TYPE),
    }),
    anonymous("POST /books streamed over the limit", {
      method: "POST",
      path: "/books",
      ...streamed(hugeJson(11.5 * MiB), JSON_TYPE),
    }),
    anonymous("GET /books/{id}", { method: "GET", path: "/books/{book}" }),
    anonymous("GET /books/{id} of an unknown book", {
      method: "GET",
      path: `/books/${UNKNOWN_ID}`,
    }),
    anonymous("PUT /books/{id}", { method: "PUT", path: "/books/{book}", ...json(book({})) }),
    anonymous("PUT /books/{id} over the limit", {
      method: "PUT",
      path: "/books/{book}",
      ...bytes(overJsonLimit, JSON_TYPE),
    }),
    anonymous("PATCH /books/{id}", { method: "PATCH", path: "/books/{book}", ...json({}) }),
    anonymous("DELETE /books/{id}", { method: "DELETE", path: "/books/{book}" }),
    anonymous("DELETE /books, a method it does not take", { method: "DELETE", path: "/books" }),
  ];
});

export const BOOKS_CASES: Record<string, HttpCase[]> = {
  "POST /books": [...fullBodyCases("POST", "/books", 201), ...bodyCases("POST", "/books")],
  "PUT /books/{id}": [
    ...fullBodyCases("PUT", "/books/{book}", 200),
    ...bodyCases("PUT", "/books/{book}"),
  ],
  "PATCH /books/{id}": [...patchCases("/books/{book}"), ...bodyCases("PATCH", "/books/{book}")],
  "GET /books": LIST_BOOKS_CASES,
  "by id": BOOK_BY_ID_CASES,
  "wrong methods": [
    wrongMethod("DELETE", "/books", "GET, HEAD, POST"),
    wrongMethod("PUT", "/books", "GET, HEAD, POST"),
    wrongMethod("POST", "/books/{book}", "GET, HEAD, PUT, PATCH, DELETE"),
    wrongMethod("POST", `/books/${UNKNOWN_ID}`, "GET, HEAD, PUT, PATCH, DELETE"),
  ],
  "auth first": BOOKS_AUTH_CASES,
};
