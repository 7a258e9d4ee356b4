/** The books REST routes (all behind a bearer token): parse, call the service, answer. */
import type { TObject } from "@sinclair/typebox";
import { Elysia, t } from "elysia";
import { BEARER_SECURITY } from "../auth/auth.http.ts";
import { jsonText, unchecked } from "../http/json-response.ts";
import { LIST_LIMIT_DEFAULT } from "../http/pagination.ts";
import { problemResponses } from "../http/problem-responses.ts";
import { readQuery } from "../http/query.ts";
import { jsonBodyRoute, queryParameters, routeDocs } from "../http/route-docs.ts";
import type { BookList } from "./books.model.ts";
import {
  BookListSchema,
  BookPatchSchema,
  BookSchema,
  ListBooksQuerySchema,
  listBooksParameters,
  NewBookSchema,
} from "./books.schemas.ts";
import type { BooksService } from "./books.service.ts";

const IdParams = t.Object({ id: t.String({ description: "The book's id." }) });

const doc = routeDocs("books", BEARER_SECURITY);
const TAKES_JSON = { consumes: "application/json" };

/** PUT and PATCH: a book's fields from a JSON body, the book as it is now. */
const updateRoute = <B extends TObject>(body: B) =>
  jsonBodyRoute({ auth: "bearer", resource: "book" }, body, { 200: BookSchema }, 401, 404, 503);

export function booksRoutes(books: BooksService) {
  return new Elysia({ name: "books", prefix: "/books" })
    .post(
      "",
      async ({ body, set }) => {
        set.status = 201;
        return books.create(body);
      },
      {
        ...jsonBodyRoute({ auth: "bearer" }, NewBookSchema, { 201: BookSchema }, 401, 503),
        detail: doc("Add a book", TAKES_JSON),
      },
    )
    .get(
      "",
      async ({ request, set }) => {
        const query = readQuery(request.url, listBooksParameters);
        return jsonText<BookList>(
          set,
          await books.listJson({
            limit: query.limit ?? LIST_LIMIT_DEFAULT,
            offset: query.offset ?? 0,
            author: query.author,
            q: query.q,
          }),
        );
      },
      {
        response: {
          200: unchecked(BookListSchema),
          ...problemResponses({ auth: "bearer", query: ListBooksQuerySchema }, 401, 422, 503),
        },
        detail: {
          ...doc("List books, newest first", {
            description: "Filter by exact `author`, search titles with `q`.",
          }),
          parameters: queryParameters(ListBooksQuerySchema),
        },
      },
    )
    .get("/:id", ({ params }) => books.get(params.id), {
      params: IdParams,
      response: {
        200: BookSchema,
        ...problemResponses({ auth: "bearer", resource: "book" }, 401, 404, 503),
      },
      detail: doc("Get a book"),
    })
    .put("/:id", ({ params, body }) => books.update(params.id, body), {
      params: IdParams,
      ...updateRoute(NewBookSchema),
      detail: doc("Replace a book", { description: "Every field is required.", ...TAKES_JSON }),
    })
    .patch("/:id", ({ params, body }) => books.update(params.id, body), {
      params: IdParams,
      ...updateRoute(BookPatchSchema),
      detail: doc("Change some fields of a book", {
        description: "At least one field; an empty body is 422.",
        ...TAKES_JSON,
      }),
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
          ...problemResponses({ auth: "bearer", resource: "book" }, 401, 404, 503),
        },
        detail: doc("Delete a book"),
      },
    );
}
