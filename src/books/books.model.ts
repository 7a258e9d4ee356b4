/** Books: request/response schemas. */
import { Type } from "@sinclair/typebox";
import { type Static, t } from "elysia";
import { paginationQuery } from "../http/pagination.ts";
import { TextField } from "../http/text-field.ts";

export const TITLE_MAX_LENGTH = 300;
export const AUTHOR_MAX_LENGTH = 200;
export const SEARCH_MAX_LENGTH = 200;
export const BOOK_NOT_FOUND = "Book with the matching ID was not found.";

const title = TextField("title", {
  minLength: 1,
  maxLength: TITLE_MAX_LENGTH,
  description: "Trimmed before validation; lengths count characters (code points).",
  examples: ["The Left Hand of Darkness"],
});
const author = TextField("author", {
  minLength: 1,
  maxLength: AUTHOR_MAX_LENGTH,
  description: "Trimmed before validation; lengths count characters (code points).",
  examples: ["Ursula K. Le Guin"],
});
const publishedOn = t.String({
  pattern: "^\\d{4}-\\d{2}-\\d{2}$",
  description: "A calendar date, `YYYY-MM-DD`.",
  examples: ["1969-03-01"],
  error: "published_on must be a real date as YYYY-MM-DD",
});

export const NewBookSchema = t.Object(
  { title, author, published_on: publishedOn },
  { additionalProperties: false },
);
export type NewBook = Static<typeof NewBookSchema>;

export const BookPatchSchema = t.Object(
  { title: t.Optional(title), author: t.Optional(author), published_on: t.Optional(publishedOn) },
  {
    additionalProperties: false,
    minProperties: 1,
    error: "give at least one of title, author, published_on",
  },
);
export type BookPatch = Static<typeof BookPatchSchema>;

const timestamp = (description: string) =>
  t.String({ description: `${description}, UTC, RFC 3339.`, examples: ["2026-11-23T21:58:42Z"] });

export const BookSchema = t.Object(
  {
    id: t.String({ format: "uuid" }),
    title: t.String(),
    author: t.String(),
    published_on: t.String({ examples: ["1969-03-01"] }),
    created_at: timestamp("When it was added"),
    updated_at: timestamp("When it last changed"),
  },
  { description: "A book." },
);
export type Book = Static<typeof BookSchema>;

export const ListBooksQuerySchema = t.Object({
  ...paginationQuery,
  author: t.Optional(
    TextField("author", { maxLength: AUTHOR_MAX_LENGTH, description: "Exact author name." }),
  ),
  q: t.Optional(
    TextField("q", {
      maxLength: SEARCH_MAX_LENGTH,
      description: "Case-insensitive search in titles.",
    }),
  ),
});

export interface ListBooksQuery {
  limit: number;
  offset: number;
  author?: string | undefined;
  q?: string | undefined;
}

export const BookListSchema = t.Object(
  {
    count: Type.Integer({ description: "How many books match, across all pages." }),
    items: t.Array(BookSchema),
  },
  { description: "One page of books, newest first." },
);
export type BookList = Static<typeof BookListSchema>;

/** `YYYY-MM-DD` that names a day that exists (no 2023-02-29), years 1 to 9999. */
export function isCalendarDate(value: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value) || value.startsWith("0000")) return false;
  const date = new Date(`${value}T00:00:00Z`);
  return (
    !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === value.padStart(10, "0")
  );
}
