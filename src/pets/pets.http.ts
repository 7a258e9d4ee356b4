/** The pets REST routes: parse, call the service, answer. */
import { Elysia, t } from "elysia";
import { jsonText, unchecked } from "../http/json-response.ts";
import { LIST_LIMIT_DEFAULT } from "../http/pagination.ts";
import { problemResponses } from "../http/problem-responses.ts";
import { readQuery } from "../http/query.ts";
import { jsonBodyRoute, queryParameters, routeDocs } from "../http/route-docs.ts";
import { discardUpload, photoUploadBody } from "../storage/photo-upload.ts";
import type { PetList } from "./pets.model.ts";
import {
  DeletePetsResultSchema,
  DeletePetsSchema,
  ListPetsQuerySchema,
  listPetsParameters,
  NewPetSchema,
  PetListSchema,
  PetSchema,
  PhotoSchema,
  PhotoUploadSchema,
} from "./pets.schemas.ts";
import type { PetsService } from "./pets.service.ts";

/** Uploads stream to a temporary file (photo-upload.ts), never whole into memory. */
const photoUpload = photoUploadBody();

const doc = routeDocs("pets", [{ ApiKeyAuth: [] }]);

export function petsRoutes(pets: PetsService) {
  return new Elysia({ name: "pets", prefix: "/pets" })
    .post(
      "",
      async ({ body, set }) => {
        set.status = 201;
        return pets.create(body);
      },
      {
        ...jsonBodyRoute({ auth: "api-key" }, NewPetSchema, { 201: PetSchema }, 401, 503),
        detail: doc("Create a pet", { consumes: "application/json" }),
      },
    )
    .get(
      "",
      async ({ request, set }) => {
        const query = readQuery(request.url, listPetsParameters);
        return jsonText<PetList>(
          set,
          await pets.listJson({
            limit: query.limit ?? LIST_LIMIT_DEFAULT,
            offset: query.offset ?? 0,
            hasPhotos: query.has_photos,
          }),
        );
      },
      {
        response: {
          200: unchecked(PetListSchema),
          ...problemResponses({ auth: "api-key", query: ListPetsQuerySchema }, 401, 422, 503),
        },
        detail: {
          ...doc("List pets, newest first"),
          parameters: queryParameters(ListPetsQuerySchema),
        },
      },
    )
    .delete("", ({ body }) => pets.deleteMany(body.ids), {
      ...jsonBodyRoute(
        { auth: "api-key" },
        DeletePetsSchema,
        { 200: DeletePetsResultSchema },
        401,
        503,
      ),
      detail: doc("Delete pets with their photos", {
        description: "Ids that match no pet (or are not UUIDs) are listed in `errors`.",
        consumes: "application/json",
      }),
    })
    .post(
      "/:id/photo",
      async ({ params, body, set }) => {
        set.status = 201;
        return pets.addPhoto(params.id, body.file);
      },
      {
        params: t.Object({ id: t.String({ description: "The pet's id." }) }),
        parse: photoUpload,
        // The upload's temporary file goes once the answer is sent, whatever it was.
        afterResponse: ({ request }) => discardUpload(request),
        body: PhotoUploadSchema,
        response: {
          201: PhotoSchema,
          ...problemResponses(
            { auth: "api-key", resource: "pet", parser: "photo", body: PhotoUploadSchema },
            400,
            401,
            404,
            413,
            415,
            422,
            503,
            507,
          ),
        },
        detail: doc("Upload a photo of a pet", { consumes: "multipart/form-data" }),
      },
    );
}
