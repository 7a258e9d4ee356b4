/** The pets routes' schemas, built from the domain's shapes and limits (pets.model.ts). */
import { Type } from "@sinclair/typebox";
import { type Static, t } from "elysia";
import { paginationParameters, paginationQuery } from "../http/pagination.ts";
import { booleanParameter } from "../http/query.ts";
import type { SameShape } from "../http/schema-shape.ts";
import { CharactersField, TextField } from "../http/text-field.ts";
import {
  AGE_MAX,
  DELETE_ID_MAX_LENGTH,
  DELETE_IDS_MAX,
  type DeletePetsResult,
  type NewPet,
  PET_NAME,
  PET_NOT_FOUND,
  PET_TYPES,
  type Pet,
  type PetList,
  type Photo,
} from "./pets.model.ts";

const uuidExample = "0193a8f2-6d1e-7c3a-9b1e-5f2d8c4a7e10";

/**
 * The schema without its `default`. Elysia fills every default of a body schema in before
 * validation, so a required field with one can never be missing: t.UnionEnum defaults to its
 * first member, and an absent `type` became "dog".
 */
export function withoutDefault<T extends object>(schema: T): T {
  const copy = { ...schema }; // keeps TypeBox's symbol keys (Kind)
  delete (copy as { default?: unknown }).default;
  return copy;
}

export const PetTypeSchema = withoutDefault(
  t.UnionEnum(PET_TYPES, {
    description: "`dog` or `cat`",
    error: "type must be dog or cat",
  }),
);

export const NewPetSchema = t.Object(
  {
    name: TextField("name", {
      ...PET_NAME,
      trimmed: true,
      description: "Trimmed before validation; lengths count characters (code points).",
      examples: ["boy"],
    }),
    // TypeBox's Integer, here and in responses: Elysia's t.Integer also accepts strings like "7"
    // (right for query strings, wrong for JSON) and documents itself as string-or-integer.
    age: Type.Integer({
      minimum: 0,
      maximum: AGE_MAX,
      description: "Years.",
      examples: [7],
      error: `age must be an integer from 0 to ${AGE_MAX}`,
    }),
    type: PetTypeSchema,
  },
  { additionalProperties: false },
);

export const PhotoSchema = t.Object(
  {
    id: t.String({ format: "uuid", examples: [uuidExample] }),
    url: t.String({
      description: "Public link to the image; needs no API key.",
      examples: ["http://localhost:3000/photos/q8S0Zk3u2s9mXW1c4Rk5Pw.jpg"],
    }),
  },
  { description: "A stored photo." },
);

export const PetSchema = t.Object(
  {
    id: t.String({ format: "uuid", examples: [uuidExample] }),
    name: t.String(),
    age: Type.Integer(),
    type: PetTypeSchema,
    photos: t.Array(PhotoSchema),
    created_at: t.String({
      description: "UTC, `YYYY-MM-DDTHH:MM:SS`.",
      examples: ["2021-05-18T19:10:17"],
    }),
  },
  { description: "A pet." },
);

const HAS_PHOTOS_ERROR = "has_photos must be true or false";

/** GET /pets' query as the route reads it (see http/query.ts)... */
export const listPetsParameters = {
  ...paginationParameters,
  has_photos: booleanParameter(HAS_PHOTOS_ERROR),
};

/** ...and as the OpenAPI document shows it. */
export const ListPetsQuerySchema = t.Object({
  ...paginationQuery,
  has_photos: t.Optional(
    t.Union([t.Literal("true"), t.Literal("false")], {
      description: "`true`: only pets with photos; `false`: only pets without; absent: all.",
      error: HAS_PHOTOS_ERROR,
    }),
  ),
});

export const PetListSchema = t.Object(
  {
    count: Type.Integer({ description: "How many pets match the filter, across all pages." }),
    items: t.Array(PetSchema),
  },
  { description: "One page of pets, newest first." },
);

export const DeletePetsSchema = t.Object(
  {
    ids: t.Array(CharactersField("each id", { maxLength: DELETE_ID_MAX_LENGTH }), {
      minItems: 1,
      maxItems: DELETE_IDS_MAX,
      error: `ids must be a list of 1 to ${DELETE_IDS_MAX} pet ids (strings)`,
      examples: [[uuidExample]],
    }),
  },
  { additionalProperties: false },
);

export const DeletePetsResultSchema = t.Object(
  {
    deleted: Type.Integer({ description: "How many pets were deleted." }),
    errors: t.Array(t.Object({ id: t.String(), error: t.String({ examples: [PET_NOT_FOUND] }) }), {
      description: "One entry per id that matched no pet (malformed ids included).",
    }),
  },
  { description: "What was deleted, and which ids were not found." },
);

export const PhotoUploadSchema = t.Object({
  // Elysia's t.File carries `default: "File"`, a marker it strips again: no default at all.
  file: withoutDefault(
    t.File({
      description: "A JPEG, PNG, WebP or GIF image.",
      error: "file must be an uploaded image file",
    }),
  ),
});

// What the routes validate and document is what the domain declares.
true satisfies SameShape<Static<typeof NewPetSchema>, NewPet>;
true satisfies SameShape<Static<typeof PhotoSchema>, Photo>;
true satisfies SameShape<Static<typeof PetSchema>, Pet>;
true satisfies SameShape<Static<typeof PetListSchema>, PetList>;
true satisfies SameShape<Static<typeof DeletePetsResultSchema>, DeletePetsResult>;
