/** All SQL for books. */
import { and, desc, eq, type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { preparedOnce } from "../db/prepared.ts";
import { integerLiteral } from "../db/sql.ts";
import type { BookEvent, BookSnapshot } from "../events/events.ts";
import { appendingEvent } from "../events/outbox.repository.ts";
import type { ListBooksQuery } from "./books.model.ts";
import { bookStats, books } from "./books.table.ts";

const rfc3339 = (column: typeof books.createdAt | typeof books.updatedAt) =>
  sql<string>`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`;

/** A book as the API and its events show it. */
const snapshotColumns = {
  id: books.id,
  title: books.title,
  author: books.author,
  published_on: sql<string>`${books.publishedOn}::text`,
  created_at: rfc3339(books.createdAt),
  updated_at: rfc3339(books.updatedAt),
};

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

function filters(query: Pick<ListBooksQuery, "author" | "q">): SQL | undefined {
  return and(
    query.author === undefined ? undefined : eq(books.author, query.author),
    query.q === undefined ? undefined : sql`${books.title} ilike ${`%${escapeLike(query.q)}%`}`,
  );
}

export interface NewBookRow {
  id: string;
  title: string;
  author: string;
  publishedOn: string;
  createdAt?: Date;
}

const placeholder = sql.placeholder;

const newBookValues = {
  id: placeholder("id"),
  title: placeholder("title"),
  author: placeholder("author"),
  publishedOn: placeholder("publishedOn"),
  createdAt: placeholder("createdAt"),
  updatedAt: placeholder("createdAt"),
};

export function createBooksRepository(db: Db) {
  const insertOnly = preparedOnce(() =>
    db.insert(books).values(newBookValues).returning(snapshotColumns).prepare("books_insert"),
  );
  const insertWithEvent = preparedOnce(() =>
    db
      .with(
        appendingEvent(db, {
          eventId: placeholder("eventId"),
          aggregateId: placeholder("id"),
          type: placeholder("type"),
          payload: placeholder("payload"),
        }),
      )
      .insert(books)
      .values(newBookValues)
      .returning(snapshotColumns)
      .prepare("books_insert_with_event"),
  );
  const findById = preparedOnce(() =>
    db
      .select(snapshotColumns)
      .from(books)
      .where(eq(books.id, placeholder("id")))
      .prepare("books_find_by_id"),
  );
  const readStats = preparedOnce(() =>
    db
      .select({ total: sql<string>`coalesce(sum(${bookStats.total}), 0)` })
      .from(bookStats)
      .prepare("book_stats_read"),
  );

  return {
    /** With `event`, the book and its event are written by one statement. */
    async insert(book: NewBookRow, event?: BookEvent) {
      const statement = event ? insertWithEvent() : insertOnly();
      const [row] = await statement.execute({
        ...book,
        createdAt: book.createdAt ?? new Date(),
        ...(event && { eventId: event.id, type: event.type, payload: event }),
      });
      if (!row) throw new Error("insert returned no row");
      return row as BookSnapshot;
    },

    async insertMany(rows: { id: string; title: string; author: string; publishedOn: string }[]) {
      if (rows.length === 0) return [];
      return (await db.insert(books).values(rows).returning(snapshotColumns)) as BookSnapshot[];
    },

    async findById(id: string): Promise<BookSnapshot | undefined> {
      const [row] = await findById().execute({ id });
      return row;
    },

    /** Undefined when there is no such book. */
    async update(
      id: string,
      changes: Partial<{ title: string; author: string; publishedOn: string }>,
    ) {
      const [row] = await db
        .update(books)
        .set({ ...changes, updatedAt: sql`now()` })
        .where(eq(books.id, id))
        .returning(snapshotColumns);
      return row as BookSnapshot | undefined;
    },

    /** The deleted book's last state, or undefined when there was none. */
    async delete(id: string) {
      const [row] = await db.delete(books).where(eq(books.id, id)).returning(snapshotColumns);
      return row as BookSnapshot | undefined;
    },

    /** Newest first; LIMIT/OFFSET as literals, as in the pets repository (one planned query). */
    async listPage(query: ListBooksQuery): Promise<BookSnapshot[]> {
      return (
        db
          .select(snapshotColumns)
          .from(books)
          .where(filters(query))
          .orderBy(desc(books.createdAt), desc(books.id))
          // Drizzle inlines an SQL object here; its types only admit numbers (which it would bind).
          .limit(integerLiteral(query.limit) as unknown as number)
          .offset(integerLiteral(query.offset) as unknown as number)
      );
    },

    /** Exact: the trigger-kept counter when unfiltered, count(*) with the filters otherwise. */
    async count(query: Pick<ListBooksQuery, "author" | "q">): Promise<number> {
      const where = filters(query);
      if (!where) {
        const [stats] = await readStats().execute();
        return Number(stats?.total ?? 0);
      }
      const [row] = await db.select({ n: sql<number>`count(*)::int` }).from(books).where(where);
      return Number(row?.n ?? 0);
    },
    /**
     * One keyset page, newest first by id (UUIDv7 ids are time-ordered): the books that come after
     * the id `after` (the last of the previous page) in that order. Walking the pages reaches every
     * book exactly once, whatever is added meanwhile; the primary key index serves it.
     */
    async listAfter(query: { after?: string | undefined; limit: number }): Promise<BookSnapshot[]> {
      return db
        .select(snapshotColumns)
        .from(books)
        .where(query.after === undefined ? undefined : sql`${books.id} < ${query.after}::uuid`)
        .orderBy(desc(books.id))
        .limit(integerLiteral(query.limit) as unknown as number);
    },
  };
}

export type BooksRepository = ReturnType<typeof createBooksRepository>;
