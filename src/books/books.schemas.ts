/** The books routes' schemas, built from the domain's shapes and limits (books.model.ts). */
import { Type } from "@sinclair/typebox";
import { type Static, t } from "elysia";
import { paginationParameters, paginationQuery } from "../http/pagination.ts";
import { schemaParameter } from "../http/query.ts";
import type { SameShape } from "../http/schema-shape.ts";
import { TextField, VALUE_MESSAGE } from "../http/text-field.ts";
import {
  AUTHOR_MAX_LENGTH,
  BOOK_TEXT,
  type Book,
  type BookList,
  type BookPatch,
  type NewBook,
  SEARCH_MAX_LENGTH,
} from "./books.model.ts";

const TRIMMED = "Trimmed before validation; lengths count characters (code points).";

const title = TextField("title", {
  ...BOOK_TEXT.title,
  trimmed: true,
  description: TRIMMED,
  examples: ["The Left Hand of Darkness"],
});
const author = TextField("author", {
  ...BOOK_TEXT.author,
  trimmed: true,
  description: TRIMMED,
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

export const BookPatchSchema = t.Object(
  { title: t.Optional(title), author: t.Optional(author), published_on: t.Optional(publishedOn) },
  {
    additionalProperties: false,
    minProperties: 1,
    // Only for the empty object: an unknown field keeps its own message.
    [VALUE_MESSAGE]: (value: unknown) =>
      value !== null && typeof value === "object" && Object.keys(value).length === 0
        ? "give at least one of title, author, published_on"
        : undefined,
  },
);

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

const AuthorQuery = TextField("author", {
  maxLength: AUTHOR_MAX_LENGTH,
  description: "Exact author name.",
});
const SearchQuery = TextField("q", {
  maxLength: SEARCH_MAX_LENGTH,
  description: "Case-insensitive search in titles.",
});

/** GET /books' query as the route reads it (see http/query.ts)... */
export const listBooksParameters = {
  ...paginationParameters,
  author: schemaParameter(AuthorQuery),
  q: schemaParameter(SearchQuery),
};

/** ...and as the OpenAPI document shows it. */
export const ListBooksQuerySchema = t.Object({
  ...paginationQuery,
  author: t.Optional(AuthorQuery),
  q: t.Optional(SearchQuery),
});

export const BookListSchema = t.Object(
  {
    count: Type.Integer({ description: "How many books match, across all pages." }),
    items: t.Array(BookSchema),
  },
  { description: "One page of books, newest first." },
);

// What the routes validate and document is what the domain declares.
true satisfies SameShape<Static<typeof NewBookSchema>, NewBook>;
true satisfies SameShape<Static<typeof BookPatchSchema>, BookPatch>;
true satisfies SameShape<Static<typeof BookSchema>, Book>;
true satisfies SameShape<Static<typeof BookListSchema>, BookList>;
