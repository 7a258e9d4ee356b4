/**
 * Pets as the domain knows them: the shapes, the limits and the rules, with no HTTP in them.
 * The route schemas (pets.schemas.ts) are built from these; the service applies them for every
 * caller, HTTP or not.
 */
import type { TextBounds } from "../text.ts";

export const PET_TYPES = ["dog", "cat"] as const;
export type PetType = (typeof PET_TYPES)[number];

export const NAME_MAX_LENGTH = 100;
export const AGE_MAX = 50;
export const DELETE_IDS_MAX = 1000;
/** The longest id a bulk delete takes, in characters: a pet id is a UUID (36). */
export const DELETE_ID_MAX_LENGTH = 100;
export const PET_NOT_FOUND = "Pet with the matching ID was not found.";

/** A pet's name, once trimmed (the service trims it). */
export const PET_NAME: TextBounds = { minLength: 1, maxLength: NAME_MAX_LENGTH };

export interface NewPet {
  name: string;
  /** Whole years, 0 to AGE_MAX. */
  age: number;
  type: PetType;
}

export interface Photo {
  id: string;
  /** Public link to the image. */
  url: string;
}

export interface Pet {
  id: string;
  name: string;
  age: number;
  type: PetType;
  photos: Photo[];
  /** UTC, `YYYY-MM-DDTHH:MM:SS`. */
  created_at: string;
}

export interface PetList {
  count: number;
  items: Pet[];
}

export interface DeletePetsResult {
  deleted: number;
  /** One entry per id that matched no pet (malformed ids included). */
  errors: { id: string; error: string }[];
}

/** The CLI export's shape: photos as plain URLs. */
export interface ExportedPet extends Omit<Pet, "photos"> {
  photos: string[];
}

/** Only pets with photos (true), only those without (false), or all. */
export type HasPhotosFilter = boolean | undefined;
