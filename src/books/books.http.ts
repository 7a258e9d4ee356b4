/** The books REST routes (all behind a bearer token): parse, call the service, answer. */
import { Elysia, t } from "elysia";
import { BEARER_SECURITY } from "../auth/auth.http.ts";
import { jsonText, unchecked } from "../http/json-response.ts";
import { consumes } from "../http/openapi-tidy.ts";
import { LIST_LIMIT_DEFAULT } from "../http/pagination.ts";
import { jsonBody } from "../http/parsers.ts";
import { problemResponses } from "../http/problem-responses.ts";
import { singleValuedQuery } from "../http/query.ts";
import type { BookList } from "./books.model.ts";
import {
  BookListSchema,
  BookPatchSchema,
  BookSchema,
  ListBooksQuerySchema,
  NewBookSchema,
} from "./books.schemas.ts";
import type { BooksService } from "./books.service.ts";

const IdParams = t.Object({ id: t.String({ description: "The book's id." }) });

const doc = (summary: string, description?: string, withJsonBody = false) => ({
  tags: ["books"],
  summary,
  ...(description && { description }),
  security: BEARER_SECURITY,
  ...(withJsonBody && consumes("application/json")),
});

export function booksRoutes(books: BooksService) {
  return new Elysia({ name: "books", prefix: "/books" })
    .post(
      "",
      async ({ body, set }) => {
        set.status = 201;
        return books.create(body);
      },
      {
        parse: jsonBody,
        body: NewBookSchema,
        response: {
          201: BookSchema,
          ...problemResponses(
            { auth: "bearer", parser: "json", body: NewBookSchema },
            400,
            401,
            413,
            415,
            422,
          ),
        },
        detail: doc("Add a book", undefined, true),
      },
    )
    .get(
      "",
      async ({ query, set }) =>
        jsonText<BookList>(
          set,
          await books.listJson({
            limit: query.limit ?? LIST_LIMIT_DEFAULT,
            offset: query.offset ?? 0,
            author: query.author,
            q: query.q,
          }),
        ),
      {
        transform: singleValuedQuery,
        query: ListBooksQuerySchema,
        response: {
          200: unchecked(BookListSchema),
          ...problemResponses({ auth: "bearer", query: ListBooksQuerySchema }, 401, 422),
        },
        detail: doc(
          "List books, newest first",
          "Filter by exact `author`, search titles with `q`.",
        ),
      },
    )
    .get("/:id", ({ params }) => books.get(params.id), {
      params: IdParams,
      response: {
        200: BookSchema,
        ...problemResponses({ auth: "bearer", resource: "book" }, 401, 404),
      },
      detail: doc("Get a book"),
    })
    .put("/:id", ({ params, body }) => books.update(params.id, body), {
      params: IdParams,
      parse: jsonBody,
      body: NewBookSchema,
      response: {
        200: BookSchema,
        ...problemResponses(
          { auth: "bearer", resource: "book", parser: "json", body: NewBookSchema },
          400,
          401,
          404,
          413,
          415,
          422,
        ),
      },
      detail: doc("Replace a book", "Every field is required.", true),
    })
    .patch("/:id", ({ params, body }) => books.update(params.id, body), {
      params: IdParams,
      parse: jsonBody,
      body: BookPatchSchema,
      response: {
        200: BookSchema,
        ...problemResponses(
          { auth: "bearer", resource: "book", parser: "json", body: BookPatchSchema },
          400,
          401,
          404,
          413,
          415,
          422,
        ),
      },
      detail: doc(
        "Change some fields of a book",
        "At least one field; an empty body is 422.",
        true,
      ),
    })
    .delete(
      "/:id",
      async ({ params, set }) => {
        await books.delete(params.id);
        set.status = 204;
      },
      {
        params: IdParams,
        response: {
          204: t.Void({ description: "Deleted." }),
          ...problemResponses({ auth: "bearer", resource: "book" }, 401, 404),
        },
        detail: doc("Delete a book"),
      },
    );
}
