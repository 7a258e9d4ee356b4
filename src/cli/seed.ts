/**
 * `petbooks seed`: demo data through the same services the API uses. Idempotent: it tops the
 * registry up to the requested numbers and creates the demo user once, so running it twice adds
 * nothing.
 */
import type { AuthService } from "../auth/auth.service.ts";
import type { BooksService } from "../books/books.service.ts";
import { ConflictError } from "../errors.ts";
import type { PetsService } from "../pets/pets.service.ts";
import { pngBytes } from "../storage/png.ts";

export const DEMO_USER = { username: "demo", password: "demo-password" };
const BATCH = 1000;
/** Photo uploads in flight at once: each is a file write and an insert. */
const PHOTO_CONCURRENCY = 16;

const PET_NAMES = [
  "Rex",
  "Bella",
  "Max",
  "Luna",
  "Charlie",
  "Milo",
  "Daisy",
  "Oscar",
  "Lola",
  "Simba",
  "Nala",
  "Rocky",
  "Coco",
  "Leo",
  "Ziggy",
  "Pepper",
  "Biscuit",
  "Mochi",
  "Shadow",
  "Ginger",
];
const TITLE_FIRST = [
  "The",
  "A",
  "Beyond the",
  "Under the",
  "Letters from the",
  "The Last",
  "The Silent",
  "Return to the",
  "Songs of the",
  "The Hidden",
];
const TITLE_SECOND = [
  "Garden",
  "River",
  "Mountain",
  "Harbor",
  "Library",
  "Orchard",
  "Lighthouse",
  "Forest",
  "Winter",
  "Compass",
  "Archive",
  "Meadow",
];
const FIRST_NAMES = [
  "Ursula",
  "Isaac",
  "Octavia",
  "Jorge",
  "Italo",
  "Toni",
  "Haruki",
  "Chinua",
  "Wisława",
  "Olga",
  "Stanisław",
  "Ngũgĩ",
];
const LAST_NAMES = [
  "Le Guin",
  "Asimov",
  "Butler",
  "Borges",
  "Calvino",
  "Morrison",
  "Murakami",
  "Achebe",
  "Szymborska",
  "Tokarczuk",
  "Lem",
  "wa Thiong'o",
];

const pick = <T>(items: readonly T[], i: number) => items[i % items.length] as T;

function demoPet(i: number) {
  return {
    name: `${pick(PET_NAMES, i)} ${Math.floor(i / PET_NAMES.length) + 1}`,
    age: i % 21,
    type: i % 2 === 0 ? ("dog" as const) : ("cat" as const),
  };
}

function demoBook(i: number) {
  const day = new Date(Date.UTC(1950, 0, 1) + ((i * 7919) % (75 * 365)) * 86_400_000);
  return {
    title: `${pick(TITLE_FIRST, i)} ${pick(TITLE_SECOND, Math.floor(i / TITLE_FIRST.length))} ${i + 1}`,
    author: `${pick(FIRST_NAMES, i * 7)} ${pick(LAST_NAMES, i * 5)}`,
    published_on: day.toISOString().slice(0, 10),
  };
}

/** A colour per pet: the demo photos are small squares, not all alike. */
const colour = (i: number): [number, number, number] => [
  (i * 67) % 256,
  (i * 131) % 256,
  (i * 199) % 256,
];

export interface SeedTargets {
  pets: number;
  books: number;
}

export interface SeedDeps {
  pets: PetsService;
  books: BooksService;
  auth: AuthService;
  progress?: (label: string, done: number, total: number) => void;
}

export interface SeedResult {
  petsAdded: number;
  photosAdded: number;
  booksAdded: number;
  demoUserCreated: boolean;
}

export async function seed(deps: SeedDeps, targets: SeedTargets): Promise<SeedResult> {
  const demoUserCreated = await deps.auth.register(DEMO_USER).then(
    () => true,
    (err) => {
      if (err instanceof ConflictError) return false;
      throw err;
    },
  );

  const existingPets = await deps.pets.count();
  const petsToAdd = Math.max(0, targets.pets - existingPets);
  let photosAdded = 0;
  for (let done = 0; done < petsToAdd; ) {
    const size = Math.min(BATCH, petsToAdd - done);
    const ids = await deps.pets.createMany(
      Array.from({ length: size }, (_, k) => demoPet(existingPets + done + k)),
    );
    // A quarter of the pets get a photo.
    const withPhoto = ids.filter((_, k) => (existingPets + done + k) % 4 === 0);
    for (let p = 0; p < withPhoto.length; p += PHOTO_CONCURRENCY) {
      await Promise.all(
        withPhoto
          .slice(p, p + PHOTO_CONCURRENCY)
          .map((id, k) => deps.pets.addPhoto(id, new Blob([pngBytes(colour(done + p + k), 16)]))),
      );
    }
    photosAdded += withPhoto.length;
    done += size;
    deps.progress?.("pets", done, petsToAdd);
  }

  const existingBooks = await deps.books.count();
  const booksToAdd = Math.max(0, targets.books - existingBooks);
  for (let done = 0; done < booksToAdd; ) {
    const size = Math.min(BATCH, booksToAdd - done);
    done += await deps.books.createMany(
      Array.from({ length: size }, (_, k) => demoBook(existingBooks + done + k)),
    );
    deps.progress?.("books", done, booksToAdd);
  }
  return { petsAdded: petsToAdd, photosAdded, booksAdded: booksToAdd, demoUserCreated };
}

/** A one-line progress bar for a terminal. */
export function progressBar(write: (text: string) => void) {
  return (label: string, done: number, total: number) => {
    const width = 30;
    const filled = Math.round((done / Math.max(total, 1)) * width);
    write(
      `\r${label.padEnd(6)} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total}${done === total ? "\n" : ""}`,
    );
  };
}
