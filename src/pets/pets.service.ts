/** The rules of the pets registry: validation, photo handling, bulk delete bookkeeping. */

import { isForeignKeyViolation } from "../db/errors.ts";
import {
  NotFoundError,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
  ValidationError,
} from "../errors.ts";
import type { Logger } from "../logger.ts";
import { detectImageFormat } from "../storage/image-format.ts";
import type { PhotoStorage } from "../storage/photo-storage.ts";
import { textProblem } from "../text.ts";
import { isUuid } from "../uuid.ts";
import {
  type DeletePetsResult,
  type ExportedPet,
  type HasPhotosFilter,
  NAME_MAX_LENGTH,
  type NewPet,
  PET_NOT_FOUND,
  type Pet,
  type PetList,
  type Photo,
} from "./pets.model.ts";
import type { ExportCursor, PetRow, PetsRepository } from "./pets.repository.ts";

export const PHOTO_TYPE_UNSUPPORTED = "The photo must be a JPEG, PNG, WebP or GIF image.";
export const photoTooLarge = (maxBytes: number) => `The photo is larger than ${maxBytes} bytes.`;

export interface PetsServiceDeps {
  repository: PetsRepository;
  storage: PhotoStorage;
  maxPhotoBytes: number;
  logger: Logger;
}

function checkedPet(input: NewPet) {
  const name = input.name.trim();
  const problem = textProblem(name, { minLength: 1, maxLength: NAME_MAX_LENGTH });
  if (problem) {
    throw new ValidationError("Invalid pet.", [{ path: "/name", message: `name ${problem}` }]);
  }
  return { id: Bun.randomUUIDv7(), name, age: input.age, type: input.type };
}

export function createPetsService({ repository, storage, maxPhotoBytes, logger }: PetsServiceDeps) {
  const toPet = (row: PetRow): Pet => ({
    id: row.id,
    name: row.name,
    age: row.age,
    type: row.type,
    photos: row.photos.map((p) => ({ id: p.id, url: storage.url(p.fileName) })),
    created_at: row.createdAt,
  });

  return {
    async create(input: NewPet): Promise<Pet> {
      return toPet(await repository.insert(checkedPet(input)));
    },

    /** Many pets in one statement, under the same rules as `create`; their ids in order. */
    createMany(inputs: NewPet[]): Promise<string[]> {
      return repository.insertMany(inputs.map(checkedPet));
    },

    async list(query: {
      limit: number;
      offset: number;
      hasPhotos: HasPhotosFilter;
    }): Promise<PetList> {
      const page = await repository.listPage(query);
      const count = page.total ?? (await repository.count(query.hasPhotos));
      return { count, items: page.pets.map(toPet) };
    },

    /**
     * The file is written before its row, and removed again if the row cannot be written, so a
     * failure never leaves a row pointing at nothing nor (short of a crash) a file nobody owns.
     */
    async addPhoto(petId: string, file: Blob): Promise<Photo> {
      if (!isUuid(petId) || !(await repository.exists(petId)))
        throw new NotFoundError(PET_NOT_FOUND);
      if (file.size === 0) {
        throw new ValidationError("The photo is empty.", [{ path: "/file", message: "is empty" }]);
      }
      if (file.size > maxPhotoBytes) {
        throw new PayloadTooLargeError(photoTooLarge(maxPhotoBytes));
      }
      const bytes = new Uint8Array(await file.arrayBuffer());
      const format = detectImageFormat(bytes);
      if (!format) {
        throw new UnsupportedMediaTypeError(PHOTO_TYPE_UNSUPPORTED);
      }
      const photo = { id: Bun.randomUUIDv7(), fileName: storage.newFileName(format) };
      await storage.save(photo.fileName, bytes);
      try {
        await repository.insertPhoto({
          ...photo,
          petId: petId.toLowerCase(),
          contentType: format.contentType,
          sizeBytes: bytes.length,
        });
      } catch (err) {
        await storage.remove(photo.fileName).catch((removeErr) =>
          logger.error("could not remove photo after failed insert", {
            file: photo.fileName,
            err: removeErr,
          }),
        );
        // The pet was deleted between the check and the insert.
        if (isForeignKeyViolation(err)) throw new NotFoundError(PET_NOT_FOUND);
        throw err;
      }
      return { id: photo.id, url: storage.url(photo.fileName) };
    },

    async deleteMany(ids: string[]): Promise<DeletePetsResult> {
      const unique = [...new Set(ids)];
      const candidates = [...new Set(unique.filter(isUuid).map((id) => id.toLowerCase()))];
      const { deletedIds, fileNames } = await repository.deleteMany(candidates);
      // Files go after commit: a rolled-back delete must not lose photos.
      const removals = await Promise.allSettled(fileNames.map((name) => storage.remove(name)));
      removals.forEach((r, i) => {
        if (r.status === "rejected") {
          logger.error("could not remove photo file", { file: fileNames[i], err: r.reason });
        }
      });
      const deleted = new Set(deletedIds);
      const reported = new Set<string>();
      const errors: DeletePetsResult["errors"] = [];
      for (const id of unique) {
        const key = isUuid(id) ? id.toLowerCase() : id;
        if (deleted.has(key) || reported.has(key)) continue;
        reported.add(key);
        errors.push({ id, error: PET_NOT_FOUND });
      }
      return { deleted: deleted.size, errors };
    },

    /** Every matching pet, newest first, in batches read with keyset pagination. */
    async *exportBatches(
      hasPhotos: HasPhotosFilter,
      batchSize = 1000,
    ): AsyncGenerator<ExportedPet[]> {
      let after: ExportCursor | undefined;
      do {
        const batch = await repository.exportBatch(after, batchSize, hasPhotos);
        if (batch.pets.length > 0) {
          yield batch.pets.map((row) => ({
            ...toPet(row),
            photos: row.photos.map((p) => storage.url(p.fileName)),
          }));
        }
        after = batch.pets.length === batchSize ? batch.next : undefined;
      } while (after);
    },
  };
}

export type PetsService = ReturnType<typeof createPetsService>;
