/** Pets request/response schemas: one declaration feeds validation and the OpenAPI document. */
import { Type } from "@sinclair/typebox";
import { type Static, t } from "elysia";
import { paginationQuery } from "../http/pagination.ts";
import { TextField } from "../http/text-field.ts";

export const PET_TYPES = ["dog", "cat"] as const;
export type PetType = (typeof PET_TYPES)[number];

export const NAME_MAX_LENGTH = 100;
export const AGE_MAX = 50;
export const DELETE_IDS_MAX = 1000;
export const PET_NOT_FOUND = "Pet with the matching ID was not found.";

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
      minLength: 1,
      maxLength: NAME_MAX_LENGTH,
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
export type NewPet = Static<typeof NewPetSchema>;

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
export type Photo = Static<typeof PhotoSchema>;

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
export type Pet = Static<typeof PetSchema>;

export const ListPetsQuerySchema = t.Object({
  ...paginationQuery,
  // Not t.UnionEnum: Elysia fills an absent optional UnionEnum query value with its first member.
  has_photos: t.Optional(
    t.Union([t.Literal("true"), t.Literal("false")], {
      description: "`true`: only pets with photos; `false`: only pets without; absent: all.",
      error: "has_photos must be true or false",
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
export type PetList = Static<typeof PetListSchema>;

export const DeletePetsSchema = t.Object(
  {
    ids: t.Array(t.String({ maxLength: 100 }), {
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
export type DeletePetsResult = Static<typeof DeletePetsResultSchema>;

export const PhotoUploadSchema = t.Object({
  // Elysia's t.File carries `default: "File"`, a marker it strips again: no default at all.
  file: withoutDefault(
    t.File({
      description: "A JPEG, PNG, WebP or GIF image.",
      error: "file must be an uploaded image file",
    }),
  ),
});

/** The CLI export's shape: photos as plain URLs. */
export interface ExportedPet extends Omit<Pet, "photos"> {
  photos: string[];
}

export type HasPhotosFilter = boolean | undefined;

export function parseHasPhotos(value: "true" | "false" | undefined): HasPhotosFilter {
  return value === undefined ? undefined : value === "true";
}
