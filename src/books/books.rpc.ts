/** The books gRPC service (petbooks.v1.BookService): parse the request, call, map to messages. */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { ValidationError } from "../errors.ts";
import {
  type BookSchema,
  type BookService,
  ListBooksResponseSchema,
} from "../gen/petbooks/v1/books_pb.ts";
import { type BookWatch, RESET_STREAM } from "../grpc/book-watch.ts";
import { isUuid } from "../uuid.ts";
import type { Book } from "./books.model.ts";
import type { BooksService } from "./books.service.ts";
import type { PageTokens } from "./page-tokens.ts";

export const PAGE_SIZE_DEFAULT = 50;
/** A larger page_size is served as this many (AIP-158), not refused. */
export const PAGE_SIZE_MAX = 1000;

export interface BookRpcDeps {
  /** Every call goes through the service, and so through its cache. */
  books: Pick<BooksService, "get" | "pageAfter">;
  /** Issues and checks ListBooks page tokens (see page-tokens.ts). */
  pageTokens: PageTokens;
  /** WatchBooks streams (grpc/book-watch.ts); absent, WatchBooks is UNIMPLEMENTED. */
  watch?: BookWatch | undefined;
}

export function pageSize(requested: number): number {
  if (requested < 0) throw new ValidationError("page_size must not be negative");
  if (requested === 0) return PAGE_SIZE_DEFAULT;
  return Math.min(requested, PAGE_SIZE_MAX);
}

export function toBookMessage(book: Book): MessageInitShape<typeof BookSchema> {
  return {
    id: book.id,
    title: book.title,
    author: book.author,
    publishedOn: book.published_on,
    createdAt: timestampFromDate(new Date(book.created_at)),
    updatedAt: timestampFromDate(new Date(book.updated_at)),
  };
}

export function bookRpc({
  books,
  pageTokens,
  watch,
}: BookRpcDeps): ServiceImpl<typeof BookService> {
  return {
    watchBooks(request, context) {
      if (!watch) throw new ConnectError("WatchBooks is not served here", Code.Unimplemented);
      return watch.stream(request, context.signal, context.values.get(RESET_STREAM));
    },

    async getBook(request) {
      if (!isUuid(request.id)) throw new ValidationError("id must be a UUID");
      return toBookMessage(await books.get(request.id));
    },

    async listBooks(request) {
      const limit = pageSize(request.pageSize);
      // A token continues the query it was issued for: the same page size, as served.
      const query = { pageSize: limit };
      const after =
        request.pageToken === "" ? undefined : pageTokens.decode(request.pageToken, query);
      // One row more than the page tells whether another page follows, without an empty last page.
      const { items: rows, total } = await books.pageAfter({ after, limit: limit + 1 });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return create(ListBooksResponseSchema, {
        books: page.map(toBookMessage),
        nextPageToken: rows.length > limit && last ? pageTokens.encode(last.id, query) : "",
        totalSize: total,
      });
    },
  };
}
