/** The pets REST routes: parse, call the service, answer. */
import { Elysia, t } from "elysia";
import { consumes } from "../http/openapi-tidy.ts";
import { LIST_LIMIT_DEFAULT } from "../http/pagination.ts";
import { jsonBody, multipartBody } from "../http/parsers.ts";
import { problemResponses } from "../http/problem.ts";
import {
  DeletePetsResultSchema,
  DeletePetsSchema,
  ListPetsQuerySchema,
  NewPetSchema,
  PetListSchema,
  PetSchema,
  PhotoSchema,
  PhotoUploadSchema,
  parseHasPhotos,
} from "./pets.model.ts";
import type { PetsService } from "./pets.service.ts";

const security = [{ ApiKeyAuth: [] }];

export function petsRoutes(pets: PetsService) {
  return new Elysia({ name: "pets", prefix: "/pets" })
    .post(
      "",
      async ({ body, set }) => {
        set.status = 201;
        return pets.create(body);
      },
      {
        parse: jsonBody,
        transform({ body }) {
          const b = body as { name?: unknown } | null;
          if (b && typeof b === "object" && typeof b.name === "string") b.name = b.name.trim();
        },
        body: NewPetSchema,
        response: { 201: PetSchema, ...problemResponses(400, 401, 413, 415, 422) },
        detail: {
          tags: ["pets"],
          summary: "Create a pet",
          security,
          ...consumes("application/json"),
        },
      },
    )
    .get(
      "",
      ({ query }) =>
        pets.list({
          limit: query.limit ?? LIST_LIMIT_DEFAULT,
          offset: query.offset ?? 0,
          hasPhotos: parseHasPhotos(query.has_photos),
        }),
      {
        query: ListPetsQuerySchema,
        response: { 200: PetListSchema, ...problemResponses(401, 422) },
        detail: { tags: ["pets"], summary: "List pets, newest first", security },
      },
    )
    .delete("", ({ body }) => pets.deleteMany(body.ids), {
      parse: jsonBody,
      body: DeletePetsSchema,
      response: { 200: DeletePetsResultSchema, ...problemResponses(400, 401, 413, 415, 422) },
      detail: {
        tags: ["pets"],
        summary: "Delete pets with their photos",
        description: "Ids that match no pet (or are not UUIDs) are listed in `errors`.",
        security,
        ...consumes("application/json"),
      },
    })
    .post(
      "/:id/photo",
      async ({ params, body, set }) => {
        set.status = 201;
        return pets.addPhoto(params.id, body.file);
      },
      {
        params: t.Object({ id: t.String({ description: "The pet's id." }) }),
        parse: multipartBody,
        body: PhotoUploadSchema,
        response: { 201: PhotoSchema, ...problemResponses(400, 401, 404, 413, 415, 422) },
        detail: {
          tags: ["pets"],
          summary: "Upload a photo of a pet",
          security,
          ...consumes("multipart/form-data"),
        },
      },
    );
}
