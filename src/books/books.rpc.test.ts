import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import type { Cache } from "../cache/cache.ts";
import { BookService } from "../gen/petbooks/v1/books_pb.ts";
import { DATABASE_UNAVAILABLE } from "../grpc/interceptors.ts";
import { createTestCache } from "../testing/app.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import {
  grpcJsCall,
  grpcJsClient,
  startTestGrpcServer,
  type TestGrpcServer,
} from "../testing/grpc-server.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import type { Book } from "./books.model.ts";
import { createBooksServiceFor } from "./books.module.ts";
import { PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, pageSize } from "./books.rpc.ts";
import type { BooksService } from "./books.service.ts";
import { createPageTokens, pageTokenKey } from "./page-tokens.ts";

const PAGE_TOKEN_SECRET = "books-rpc-test-secret-0123456789-0123456789";

let database: TestDatabase;
let cache: Cache;
let books: BooksService;
let server: TestGrpcServer;
let counter = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  cache = await createTestCache();
  books = createBooksServiceFor({ db: database.db, cache });
  server = await startTestGrpcServer({
    books,
    ping: database.ping,
    pageTokenSecret: PAGE_TOKEN_SECRET,
  });
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await server?.close(1000);
  await cache?.close();
  await database?.close();
}, SETUP_TIMEOUT_MS);

beforeEach(async () => {
  await database.db.execute(sql`delete from books`);
}, SETUP_TIMEOUT_MS);

function addBook(): Promise<Book> {
  counter += 1;
  return books.create({ title: `Book ${counter}`, author: "Someone", published_on: "2001-02-03" });
}

async function addBooks(n: number): Promise<Book[]> {
  const added = [];
  for (let i = 0; i < n; i++) added.push(await addBook());
  return added;
}

/** Inserting one row per statement is slow on PGlite; tests of large pages insert in one go. */
async function insertMany(n: number) {
  await database.db.execute(sql`
    insert into books (id, title, author, published_on)
    select gen_random_uuid(), 'Bulk ' || i, 'Bulk', date '2000-01-01' from generate_series(1, ${n}) as i`);
}

const codeOf = async (call: Promise<unknown>) => {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded");
};

describe("GetBook", () => {
  test("answers the book with the REST API's fields and formats (Connect over gRPC)", async () => {
    const book = await addBook();
    const answer = await server.client(BookService).getBook({ id: book.id });
    expect(answer).toMatchObject({
      id: book.id,
      title: book.title,
      author: book.author,
      publishedOn: "2001-02-03",
    });
    expect(answer.createdAt && timestampDate(answer.createdAt).toISOString()).toBe(
      book.created_at.replace("Z", ".000Z"),
    );
    expect(answer.updatedAt && timestampDate(answer.updatedAt).toISOString()).toBe(
      book.updated_at.replace("Z", ".000Z"),
    );
  });

  test("grpc-js with the .proto files sees the same book", async () => {
    const book = await addBook();
    const client = grpcJsClient(
      server.address,
      "petbooks/v1/books.proto",
      "petbooks.v1.BookService",
    );
    try {
      const { value } = await grpcJsCall(client, "GetBook", { id: book.id }, server.bearer);
      expect(value).toMatchObject({ id: book.id, title: book.title, published_on: "2001-02-03" });
      expect(Number(value.created_at.seconds)).toBe(Date.parse(book.created_at) / 1000);
    } finally {
      client.close();
    }
  });

  test.each([
    ["an unknown id", "NOT_FOUND", "0199a7c6-0000-7000-8000-000000000000"],
    ["an empty id", "INVALID_ARGUMENT", ""],
    ["a malformed id", "INVALID_ARGUMENT", "not-a-uuid"],
    ["SQL in the id", "INVALID_ARGUMENT", "1'; drop table books; --"],
    ["a UUID with a stray character", "INVALID_ARGUMENT", "0199a7c6-0000-7000-8000-00000000000g"],
  ] as const)("%s is %s", async (_, expected, id) => {
    const client = grpcJsClient(
      server.address,
      "petbooks/v1/books.proto",
      "petbooks.v1.BookService",
    );
    try {
      const { error } = await grpcJsCall(client, "GetBook", { id }, server.bearer);
      expect(error?.code).toBe(GrpcStatus[expected]);
      expect(error?.details).not.toMatch(/select|from|books|postgres|at \//i);
    } finally {
      client.close();
    }
  });
});

describe("ListBooks", () => {
  test("an empty catalogue is one empty, last page", async () => {
    const page = await server.client(BookService).listBooks({});
    expect(page).toMatchObject({ books: [], nextPageToken: "", totalSize: 0 });
  });

  test("newest first; walking every page meets every book exactly once while books are added", async () => {
    const before = await addBooks(7);
    const client = server.client(BookService);
    const seen: string[] = [];
    const added: Book[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = await client.listBooks({ pageSize: 3, pageToken: token });
      expect(page.books.length).toBeLessThanOrEqual(3);
      expect(page.totalSize).toBe(before.length + added.length);
      seen.push(...page.books.map((b) => b.id));
      token = page.nextPageToken;
      pages += 1;
      added.push(await addBook()); // lands on a page already read: never seen, never twice
    } while (token !== "");
    expect(pages).toBe(3);
    expect(seen).toEqual(before.map((b) => b.id).reverse());
    expect(new Set(seen).size).toBe(seen.length);
    // A fresh walk starts with what was added, still newest first.
    const first = await client.listBooks({ pageSize: 2 });
    expect(first.books.map((b) => b.id)).toEqual(
      added
        .slice(-2)
        .map((b) => b.id)
        .reverse(),
    );
  });

  test("a page size that divides the total ends without an empty page", async () => {
    await addBooks(4);
    const client = server.client(BookService);
    const first = await client.listBooks({ pageSize: 2 });
    const second = await client.listBooks({ pageSize: 2, pageToken: first.nextPageToken });
    expect(second.books).toHaveLength(2);
    expect(second.nextPageToken).toBe("");
  });

  test(`page_size 0 means ${PAGE_SIZE_DEFAULT}; above ${PAGE_SIZE_MAX} is served as ${PAGE_SIZE_MAX}`, async () => {
    await insertMany(PAGE_SIZE_MAX + 1);
    const client = server.client(BookService);
    const byDefault = await client.listBooks({});
    expect(byDefault.books).toHaveLength(PAGE_SIZE_DEFAULT);
    expect(byDefault.totalSize).toBe(PAGE_SIZE_MAX + 1);
    const clamped = await client.listBooks({ pageSize: 5000 });
    expect(clamped.books).toHaveLength(PAGE_SIZE_MAX);
    const rest = await client.listBooks({ pageSize: 5000, pageToken: clamped.nextPageToken });
    expect(rest.books).toHaveLength(1);
    expect(rest.nextPageToken).toBe("");
  });

  test("grpc-js walks the pages too", async () => {
    const added = await addBooks(3);
    const client = grpcJsClient(
      server.address,
      "petbooks/v1/books.proto",
      "petbooks.v1.BookService",
    );
    try {
      const first = await grpcJsCall(client, "ListBooks", { page_size: 2 }, server.bearer);
      expect(first.value.total_size).toBe(3);
      const second = await grpcJsCall(
        client,
        "ListBooks",
        {
          page_size: 2,
          page_token: first.value.next_page_token,
        },
        server.bearer,
      );
      expect(
        [...first.value.books, ...second.value.books].map((b: { id: string }) => b.id),
      ).toEqual(added.map((b) => b.id).reverse());
      expect(second.value.next_page_token).toBe("");
    } finally {
      client.close();
    }
  });

  // A token this server would issue, for a page size of 50 (the default).
  const validToken = createPageTokens(pageTokenKey(PAGE_TOKEN_SECRET)).encode(
    "0199a7c6-0000-7000-8000-000000000000",
    { pageSize: PAGE_SIZE_DEFAULT },
  );
  test.each([
    ["a negative page_size", { pageSize: -1 }],
    ["a page_token that is not base64url", { pageToken: "not a token!" }],
    ["a page_token cut short", { pageToken: validToken.slice(0, -1) }],
    ["a page_token with another version", { pageToken: `B${validToken.slice(1)}` }],
    [
      "a page_token with its last character changed",
      { pageToken: `${validToken.slice(0, -1)}${validToken.endsWith("B") ? "C" : "B"}` },
    ],
    ["a page_token for another page_size", { pageSize: 10, pageToken: validToken }],
    ["a raw id as page_token", { pageToken: "0199a7c6-0000-7000-8000-000000000000" }],
  ])("%s is INVALID_ARGUMENT", async (_, request) => {
    const error = await codeOf(server.client(BookService).listBooks(request));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/page_size|page_token/);
  });

  test("that token is accepted with its own page size (the cases above can fail)", async () => {
    for (const size of [0, PAGE_SIZE_DEFAULT]) {
      const page = await server
        .client(BookService)
        .listBooks({ pageSize: size, pageToken: validToken });
      expect(page.books).toEqual([]);
    }
  });
});

describe("page sizes", () => {
  test.each([
    [0, PAGE_SIZE_DEFAULT],
    [1, 1],
    [PAGE_SIZE_MAX, PAGE_SIZE_MAX],
    [PAGE_SIZE_MAX + 1, PAGE_SIZE_MAX],
  ])("page_size %p serves %p", (requested, served) => {
    expect(pageSize(requested)).toBe(served);
  });
});

describe("failures", () => {
  test("a database error is INTERNAL with a request id, and its text stays in the log", async () => {
    const broken = await startTestGrpcServer({
      books: {
        get: () =>
          Promise.reject(new Error('relation "books" does not exist: select * from books')),
        pageAfter: () => Promise.reject(new Error('syntax error at or near "selec"')),
      },
    });
    try {
      // One call at a time: a second one started early could fail before anyone awaits it.
      for (const call of [
        () => broken.client(BookService).getBook({ id: "0199a7c6-0000-7000-8000-000000000000" }),
        () => broken.client(BookService).listBooks({}),
      ]) {
        const error = await codeOf(call());
        expect(error.code).toBe(Code.Internal);
        expect(error.rawMessage).toMatch(/^Internal error; quote request id [0-9a-f-]{36}\.$/);
        expect(error.rawMessage).not.toMatch(/select|relation|syntax/i);
        const requestId = error.rawMessage.match(/[0-9a-f-]{36}/)?.[0];
        const logged = broken.logs.find(
          (l) => l.msg === "unhandled error" && l.request_id === requestId,
        );
        expect(JSON.stringify(logged)).toMatch(/does not exist|syntax error/);
      }
    } finally {
      await broken.close(1000);
    }
  });
});

describe("a database that cannot be reached", () => {
  /** What postgres.js and Drizzle raise when the server is gone (see db/errors.ts). */
  const refused = () =>
    Object.assign(new Error("connect ECONNREFUSED 10.1.2.3:5432"), { code: "ECONNREFUSED" });
  const shutDown = () =>
    new Error('Failed query: select "id" from "books"', {
      cause: Object.assign(new Error("terminating connection due to administrator command"), {
        code: "57P01",
      }),
    });

  async function expectUnavailable(broken: TestGrpcServer) {
    // One call at a time: a second one started early could fail before anyone awaits it.
    for (const call of [
      () => broken.client(BookService).getBook({ id: "0199a7c6-0000-7000-8000-000000000000" }),
      () => broken.client(BookService).listBooks({}),
    ]) {
      const error = await codeOf(call());
      expect(error.code).toBe(Code.Unavailable);
      // Our own words: never the driver's, which name hosts, ports and SQL.
      expect(error.rawMessage).toBe(DATABASE_UNAVAILABLE);
    }
    expect(JSON.stringify(broken.logs)).not.toContain("unhandled error");
    expect(broken.logs).toContainEqual(
      expect.objectContaining({ level: "warn", msg: "database unavailable" }),
    );
  }

  test.each([
    ["a refused connection", refused],
    ["a server shutting down, wrapped by Drizzle", shutDown],
  ])("%s is UNAVAILABLE, not INTERNAL", async (_, error) => {
    const broken = await startTestGrpcServer({
      books: { get: () => Promise.reject(error()), pageAfter: () => Promise.reject(error()) },
    });
    try {
      await expectUnavailable(broken);
    } finally {
      await broken.close(1000);
    }
  });

  test("a real driver with nothing listening on its port is UNAVAILABLE", async () => {
    // Port 1 on the loopback: nobody listens there, so the connection is refused at once.
    const client = postgres("postgres://petbooks@127.0.0.1:1/petbooks", {
      max: 1,
      connect_timeout: 5,
      onnotice: () => {},
    });
    const db = drizzle(client);
    const broken = await startTestGrpcServer({
      books: createBooksServiceFor({ db, cache }),
    });
    try {
      await expectUnavailable(broken);
    } finally {
      await broken.close(1000);
      await client.end({ timeout: 1 });
    }
  });

  test.skipIf(!process.env.DATABASE_URL)(
    "a PostgreSQL handle whose connections were closed is UNAVAILABLE",
    async () => {
      const closed = await createTestDatabase();
      const broken = await startTestGrpcServer({
        books: createBooksServiceFor({ db: closed.db, cache }),
      });
      try {
        await closed.close();
        await expectUnavailable(broken);
      } finally {
        await broken.close(1000);
      }
    },
    SETUP_TIMEOUT_MS,
  );
});
