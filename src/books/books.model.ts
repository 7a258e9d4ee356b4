/**
 * Books as the domain knows them: the shapes, the limits and the rules, with no HTTP in them.
 * The route schemas (books.schemas.ts) are built from these; the service applies them for every
 * caller, HTTP or not.
 */
import type { TextBounds } from "../text.ts";

export const TITLE_MAX_LENGTH = 300;
export const AUTHOR_MAX_LENGTH = 200;
export const SEARCH_MAX_LENGTH = 200;
export const BOOK_NOT_FOUND = "Book with the matching ID was not found.";

/** Title and author, once trimmed (the service trims them). */
export const BOOK_TEXT: Record<"title" | "author", TextBounds> = {
  title: { minLength: 1, maxLength: TITLE_MAX_LENGTH },
  author: { minLength: 1, maxLength: AUTHOR_MAX_LENGTH },
};

export interface NewBook {
  title: string;
  author: string;
  /** A calendar date, `YYYY-MM-DD` (see isCalendarDate). */
  published_on: string;
}

/** Some of a book's fields (PUT gives all of them). */
export type BookPatch = Partial<NewBook>;

export interface Book {
  id: string;
  title: string;
  author: string;
  published_on: string;
  /** UTC, RFC 3339, whole seconds. */
  created_at: string;
  updated_at: string;
}

export interface ListBooksQuery {
  limit: number;
  offset: number;
  author?: string | undefined;
  q?: string | undefined;
}

export interface BookList {
  count: number;
  items: Book[];
}

/** `YYYY-MM-DD` that names a day that exists (no 2023-02-29), years 1 to 9999. */
export function isCalendarDate(value: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value) || value.startsWith("0000")) return false;
  const date = new Date(`${value}T00:00:00Z`);
  return (
    !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === value.padStart(10, "0")
  );
}
