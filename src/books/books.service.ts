/**
 * The rules of the books catalogue. Each write and its event commit together (transactional
 * outbox); the cache is invalidated after the commit and before the caller gets an answer.
 */
import type { Cache } from "../cache/cache.ts";
import type { UnitOfWork } from "../db/unit-of-work.ts";
import { type FieldError, NotFoundError, ValidationError } from "../errors.ts";
import {
  type BookChange,
  type BookEventJson,
  type BookSnapshot,
  outboxEvent,
} from "../events/events.ts";
import type { OutboxWriter } from "../events/outbox.repository.ts";
import { textProblem } from "../text.ts";
import { isUuid } from "../uuid.ts";
import {
  BOOK_NOT_FOUND,
  BOOK_TEXT,
  type Book,
  type BookPatch,
  isCalendarDate,
  type ListBooksQuery,
  type NewBook,
} from "./books.model.ts";
import type { BooksRepository } from "./books.repository.ts";

/** What the books service reads and writes through: its table and the outbox. */
export interface BooksData {
  books: BooksRepository;
  outbox: OutboxWriter;
}

export interface BooksServiceDeps {
  data: UnitOfWork<BooksData>;
  cache: Cache;
  /** Called after every committed write (the relay publishes sooner). */
  onEventCommitted?: () => void;
}

const LIST_NAMESPACE = "books:list";
const bookNamespace = (id: string) => `book:${id}`;

function checkedFields(input: BookPatch): {
  title?: string;
  author?: string;
  publishedOn?: string;
} {
  const errors: FieldError[] = [];
  const trimmed = (field: "title" | "author", value: string | undefined) => {
    const text = value?.trim();
    const problem = text === undefined ? undefined : textProblem(text, BOOK_TEXT[field]);
    if (problem) errors.push({ path: `/${field}`, message: `${field} ${problem}` });
    return text;
  };
  const title = trimmed("title", input.title);
  const author = trimmed("author", input.author);
  if (input.published_on !== undefined && !isCalendarDate(input.published_on)) {
    errors.push({ path: "/published_on", message: "must be a real date as YYYY-MM-DD" });
  }
  if (errors.length > 0) throw new ValidationError("Invalid book.", errors);
  return {
    ...(title !== undefined && { title }),
    ...(author !== undefined && { author }),
    ...(input.published_on !== undefined && { publishedOn: input.published_on }),
  };
}

/** A new event, in the JSON form the outbox stores (events.ts says why). */
const event = (change: BookChange, book: BookSnapshot): BookEventJson => outboxEvent(change, book);

export function createBooksService({ data, cache, onEventCommitted = () => {} }: BooksServiceDeps) {
  const repository = data.repositories.books;

  /** Updates and deletes: `change` and its event in one transaction; then invalidate, nudge. */
  const write = async (
    type: BookChange,
    change: (books: BooksRepository) => Promise<BookSnapshot | undefined>,
  ): Promise<BookSnapshot> => {
    const book = await data.transaction(async ({ books, outbox }) => {
      const changed = await change(books);
      if (changed) await outbox.append([event(type, changed)]);
      return changed;
    });
    if (!book) throw new NotFoundError(BOOK_NOT_FOUND);
    await cache.invalidate([bookNamespace(book.id), LIST_NAMESPACE]);
    onEventCommitted();
    return book;
  };

  /**
   * Read-through: a hit skips the database; a miss fills the cache unless a write intervened.
   * With the cache off (CACHE_TTL=0) this is the load alone: nothing to read, key or serialise.
   */
  const cached = async <T>(namespace: string, key: string, load: () => Promise<T | undefined>) => {
    if (cache.kind === "off") return load();
    const hit = await cache.read(namespace, key);
    if (hit.value !== undefined) return JSON.parse(hit.value) as T;
    const value = await load();
    if (value !== undefined) await cache.write(namespace, key, hit.version, JSON.stringify(value));
    return value;
  };

  /** `cached` for a value kept as JSON text, handed on as it was stored (no parse, no stringify). */
  const cachedJson = async (namespace: string, key: () => string, load: () => Promise<string>) => {
    if (cache.kind === "off") return load();
    const entry = key();
    const hit = await cache.read(namespace, entry);
    if (hit.value !== undefined) return hit.value;
    const value = await load();
    await cache.write(namespace, entry, hit.version, value);
    return value;
  };

  /** A page of the list and its count, as the JSON text GET /books answers. */
  const listJson = (query: ListBooksQuery): Promise<string> =>
    cachedJson(
      LIST_NAMESPACE,
      () => JSON.stringify([query.limit, query.offset, query.author ?? null, query.q ?? null]),
      () => repository.listJson(query),
    );

  return {
    async create(input: NewBook): Promise<Book> {
      const fields = checkedFields(input) as Required<ReturnType<typeof checkedFields>>;
      const now = new Date();
      const rfc3339 = `${now.toISOString().slice(0, 19)}Z`;
      const book: BookSnapshot = {
        id: Bun.randomUUIDv7(),
        title: fields.title,
        author: fields.author,
        published_on: fields.publishedOn,
        created_at: rfc3339,
        updated_at: rfc3339,
      };
      // One autocommitted statement writes the book and its event: the insert locks the
      // book_stats counter row (trigger) until commit, so every round trip after it would make
      // each concurrent create wait longer.
      const created = await repository.insert(
        { id: book.id, ...fields, createdAt: now },
        event("book.created", book),
      );
      await cache.invalidate([LIST_NAMESPACE]);
      onEventCommitted();
      return created;
    },

    /** Many books in one transaction, each with its book.created event (seeding). */
    async createMany(inputs: NewBook[]): Promise<number> {
      const rows = inputs.map((input) => ({
        id: Bun.randomUUIDv7(),
        ...(checkedFields(input) as Required<ReturnType<typeof checkedFields>>),
      }));
      const created = await data.transaction(async ({ books, outbox }) => {
        const inserted = await books.insertMany(rows);
        await outbox.append(inserted.map((book) => event("book.created", book)));
        return inserted.length;
      });
      await cache.invalidate([LIST_NAMESPACE]);
      onEventCommitted();
      return created;
    },

    async get(id: string): Promise<Book> {
      if (!isUuid(id)) throw new NotFoundError(BOOK_NOT_FOUND);
      const book = await cached(bookNamespace(id.toLowerCase()), "", () => repository.findById(id));
      if (!book) throw new NotFoundError(BOOK_NOT_FOUND);
      return book;
    },

    listJson,

    /** How many books there are. */
    count: (): Promise<number> => repository.count(),

    /** Sets the fields given (PUT gives all of them, PATCH some). */
    update(id: string, input: BookPatch): Promise<Book> {
      if (!isUuid(id)) throw new NotFoundError(BOOK_NOT_FOUND);
      const fields = checkedFields(input);
      return write("book.updated", (books) => books.update(id, fields));
    },

    async delete(id: string): Promise<void> {
      if (!isUuid(id)) throw new NotFoundError(BOOK_NOT_FOUND);
      await write("book.deleted", (books) => books.delete(id));
    },

    /**
     * A keyset page (ListBooks, books.rpc.ts): the books after the id `after`, newest first, and
     * how many there are in all; read through the cache like the offset pages.
     */
    async pageAfter(query: { after?: string | undefined; limit: number }) {
      const page = await cached(
        LIST_NAMESPACE,
        JSON.stringify(["after", query.limit, query.after ?? null]),
        async () => {
          const [items, total] = await Promise.all([
            repository.listAfter(query),
            repository.count(),
          ]);
          return { items, total };
        },
      );
      return page as { items: Book[]; total: number };
    },
  };
}

export type BooksService = ReturnType<typeof createBooksService>;
