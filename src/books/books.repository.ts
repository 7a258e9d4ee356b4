/** All SQL for books. */
import { and, eq, type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { jsonString, listAnswerJson, utcSecondsJson } from "../db/json-text.ts";
import { preparedOnce, renderedOnce, renderSql } from "../db/prepared.ts";
import { rows } from "../db/rows.ts";
import { integerLiteral } from "../db/sql.ts";
import { textQuery } from "../db/text-query.ts";
import { rfc3339Text } from "../db/timestamps.ts";
import type { BookEventJson, BookSnapshot } from "../events/events.ts";
import { appendingEvent } from "../events/outbox.repository.ts";
import { traceparentNow } from "../observability/event-traces.ts";
import type { ListBooksQuery } from "./books.model.ts";
import { bookStats, books } from "./books.table.ts";

/** A book as the API and its events show it. */
const snapshotColumns = {
  id: books.id,
  title: books.title,
  author: books.author,
  published_on: sql<string>`${books.publishedOn}::text`,
  created_at: rfc3339Text(books.createdAt),
  updated_at: rfc3339Text(books.updatedAt),
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

/**
 * An unfiltered page, newest first, with the columns named as in BookSnapshot: `execute` answers
 * rows by column name.
 */
const namedSnapshotColumns = sql`${books.id}, ${books.title}, ${books.author},
  ${snapshotColumns.published_on} as published_on,
  ${snapshotColumns.created_at} as created_at, ${snapshotColumns.updated_at} as updated_at`;

/** How many books there are, from the trigger-kept counters. */
const unfilteredCount = sql`select coalesce(sum(${bookStats.total}), 0) as total from ${bookStats}`;

/** The book aliased `b` as GET /books shows it (see db/json-text.ts). */
const bookJson = sql`'{"id":"' || b.id || '","title":' || ${jsonString(sql`b.title`)} ||
  ',"author":' || ${jsonString(sql`b.author`)} || ',"published_on":' || ${jsonString(sql`b.published_on`)} ||
  ',"created_at":' || ${utcSecondsJson(sql`b.created_at`, "Z")} ||
  ',"updated_at":' || ${utcSecondsJson(sql`b.updated_at`, "Z")} || '}'`;

/**
 * GET /books' whole answer in one statement and one round trip, written by PostgreSQL:
 * `{"count":…,"items":[…]}`, the page newest first and the exact count (the trigger-kept counter
 * when unfiltered, count(*) with the filters otherwise). LIMIT and OFFSET are literals, as in the
 * pets repository (planned for the actual numbers); the filters are parameters.
 */
function listQuery(query: ListBooksQuery) {
  const where = filters(query);
  const count = where
    ? sql`(select count(*) from ${books} where ${where})`
    : sql`(${unfilteredCount})`;
  return sql`
    select ${listAnswerJson(count, bookJson, sql`b.created_at desc, b.id desc`)} as body
    from (
      select ${books.id}, ${books.title}, ${books.author}, ${books.publishedOn},
        ${books.createdAt}, ${books.updatedAt}
      from ${books}
      ${where ? sql`where ${where}` : sql``}
      order by ${books.createdAt} desc, ${books.id} desc
      limit ${integerLiteral(query.limit)} offset ${integerLiteral(query.offset)}
    ) b`;
}

/**
 * A keyset page of ListBooks (see listAfter), the token's id its one parameter, columns named as
 * in BookSnapshot.
 */
const afterPageQuery = (limit: number, withAfter: boolean) => sql`
  select ${namedSnapshotColumns} from ${books}
  ${withAfter ? sql`where ${books.id} < ${sql.placeholder("after")}::uuid` : sql``}
  order by ${books.id} desc
  limit ${integerLiteral(limit)}`;

export function createBooksRepository(db: Db) {
  const unfilteredList = renderedOnce();
  /** ListBooks' pages, by page size (bounded, books.rpc.ts), with and without a token. */
  const afterPage = renderedOnce();
  const run = textQuery(db);
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
          traceparent: placeholder("traceparent"),
        }),
      )
      .insert(books)
      .values(newBookValues)
      .returning(snapshotColumns)
      .prepare("books_insert_with_event"),
  );
  // GetBook and GET /books/:id: one parameter, run with textQuery (a gRPC GetBook spent about 2%
  // of its CPU in Drizzle's prepared-query path, profiled under h2load).
  const findById = preparedOnce(() =>
    renderSql(
      sql`select ${namedSnapshotColumns} from ${books} where ${books.id} = ${placeholder("id")}`,
    ),
  );
  // The unfiltered count, the other half of nearly every GET /books: rendered once and run with
  // textQuery, like the unfiltered pages.
  const readStats = preparedOnce(() => renderSql(unfilteredCount));
  return {
    /** With `event`, the book and its event are written by one statement. */
    async insert(book: NewBookRow, event?: BookEventJson) {
      const statement = event ? insertWithEvent() : insertOnly();
      const [row] = await statement.execute({
        ...book,
        createdAt: book.createdAt ?? new Date(),
        ...(event && {
          eventId: event.id,
          type: event.type,
          payload: event,
          // The writer's trace, when tracing is on (observability/event-traces.ts).
          traceparent: traceparentNow(),
        }),
      });
      if (!row) throw new Error("insert returned no row");
      return row as BookSnapshot;
    },

    async insertMany(rows: { id: string; title: string; author: string; publishedOn: string }[]) {
      if (rows.length === 0) return [];
      return (await db.insert(books).values(rows).returning(snapshotColumns)) as BookSnapshot[];
    },

    async findById(id: string): Promise<BookSnapshot | undefined> {
      const [row] = await run<BookSnapshot>(findById(), [id], { reuse: true });
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

    /**
     * A page, newest first, and the exact count of the books that match, as the JSON text of
     * GET /books' answer (see listQuery). The unfiltered pages, nearly all of what clients ask
     * for, are rendered once (see renderedOnce), and the first one kept prepared.
     */
    async listJson(query: ListBooksQuery): Promise<string> {
      const [row] =
        query.author === undefined && query.q === undefined
          ? await run<{ body: string }>(
              unfilteredList(`${query.limit}:${query.offset}`, () => listQuery(query)),
              [],
              { reuse: query.offset === 0 },
            )
          : rows<{ body: string }>(await db.execute(listQuery(query)));
      if (row === undefined) throw new Error("the list statement answered no row");
      return row.body;
    },

    /** How many books there are: exact, from the trigger-kept counters. */
    async count(): Promise<number> {
      const [stats] = await run<{ total: string }>(readStats(), [], { reuse: true });
      return Number(stats?.total ?? 0);
    },
    /**
     * One keyset page, newest first by id (UUIDv7 ids are time-ordered): the books that come after
     * the id `after` (the last of the previous page) in that order. Walking the pages reaches every
     * book exactly once, whatever is added meanwhile; the primary key index serves it.
     */
    async listAfter(query: { after?: string | undefined; limit: number }): Promise<BookSnapshot[]> {
      const { after, limit } = query;
      const statement = afterPage(`${limit}:${after !== undefined}`, () =>
        afterPageQuery(limit, after !== undefined),
      );
      return run<BookSnapshot>(statement, after === undefined ? [] : [after], { reuse: true });
    },
  };
}

export type BooksRepository = ReturnType<typeof createBooksRepository>;
