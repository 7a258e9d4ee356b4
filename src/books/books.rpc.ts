/** The books gRPC service (petbooks.v1.BookService): parse the request, call, map to messages. */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { ValidationError } from "../errors.ts";
import {
  type BookSchema,
  type BookService,
  ListBooksResponseSchema,
} from "../gen/petbooks/v1/books_pb.ts";
import { isUuid } from "../uuid.ts";
import type { Book } from "./books.model.ts";
import type { BooksRepository } from "./books.repository.ts";
import type { BooksService } from "./books.service.ts";

export const PAGE_SIZE_DEFAULT = 50;
/** A larger page_size is served as this many (AIP-158), not refused. */
export const PAGE_SIZE_MAX = 1000;

export interface BookRpcDeps {
  /** GetBook goes through the service, and so through its cache. */
  books: Pick<BooksService, "get">;
  /** ListBooks reads keyset pages, which the service's offset pages do not offer. */
  repository: Pick<BooksRepository, "listAfter" | "count">;
}

/**
 * Page tokens are the last id of the page, base64url-encoded after a version byte: opaque to
 * callers, cheap to check, and free to change shape later under another version byte.
 */
const TOKEN_VERSION = 1;
const TOKEN = /^[A-Za-z0-9_-]{23}$/;

export function encodePageToken(lastId: string): string {
  const bytes = Buffer.from(lastId.replaceAll("-", ""), "hex");
  return Buffer.concat([Buffer.of(TOKEN_VERSION), bytes]).toString("base64url");
}

/** The id the token carries; a ValidationError for anything this server did not issue. */
export function decodePageToken(token: string): string {
  const bytes = Buffer.from(token, "base64url");
  // Only the exact spelling this server writes: base64url has several for the last few bits.
  const issued =
    TOKEN.test(token) &&
    bytes.length === 17 &&
    bytes[0] === TOKEN_VERSION &&
    bytes.toString("base64url") === token;
  if (!issued) {
    throw new ValidationError(
      "page_token is not valid: pass the next_page_token of the previous page unchanged",
    );
  }
  const hex = bytes.subarray(1).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
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

export function bookRpc({ books, repository }: BookRpcDeps): ServiceImpl<typeof BookService> {
  return {
    async getBook(request) {
      if (!isUuid(request.id)) throw new ValidationError("id must be a UUID");
      return toBookMessage(await books.get(request.id));
    },

    async listBooks(request) {
      const limit = pageSize(request.pageSize);
      const after = request.pageToken === "" ? undefined : decodePageToken(request.pageToken);
      // One row more than the page tells whether another page follows, without an empty last page.
      const [rows, total] = await Promise.all([
        repository.listAfter({ after, limit: limit + 1 }),
        repository.count({}),
      ]);
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return create(ListBooksResponseSchema, {
        books: page.map(toBookMessage),
        nextPageToken: rows.length > limit && last ? encodePageToken(last.id) : "",
        totalSize: total,
      });
    },
  };
}
