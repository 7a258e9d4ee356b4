/** The rules of the pets registry: validation, photo handling, bulk delete bookkeeping. */

import { isForeignKeyViolation } from "../db/errors.ts";
import type { JsonText } from "../db/json-text.ts";
import type { UnitOfWork } from "../db/unit-of-work.ts";
import {
  NotFoundError,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
  ValidationError,
} from "../errors.ts";
import type { Logger } from "../logger.ts";
import { detectImageFormat } from "../storage/image-format.ts";
import type { PhotoStorage } from "../storage/photo-storage.ts";
import { StorageUnwritableError } from "../storage/storage-errors.ts";
import { stripMetadata } from "../storage/strip-metadata.ts";
import { textProblem } from "../text.ts";
import { isUuid } from "../uuid.ts";
import {
  type DeletePetsResult,
  type HasPhotosFilter,
  type NewPet,
  PET_NAME,
  PET_NOT_FOUND,
  type Pet,
  type Photo,
} from "./pets.model.ts";
import type { ExportBatch, PetRow, PetsRepository } from "./pets.repository.ts";

export const PHOTO_TYPE_UNSUPPORTED = "The photo must be a JPEG, PNG, WebP or GIF image.";
export const photoTooLarge = (maxBytes: number) => `The photo is larger than ${maxBytes} bytes.`;

/** What the pets service reads and writes through. */
export interface PetsData {
  pets: PetsRepository;
}

export interface PetsServiceDeps {
  data: UnitOfWork<PetsData>;
  storage: PhotoStorage;
  maxPhotoBytes: number;
  logger: Logger;
  /**
   * Notes photo files whose removal failed, for `serve`'s sweep to retry (object-deletion-sweeper.ts);
   * unset, such a failure is only logged.
   */
  deferredRemovals?: { deferRemovals(fileNames: string[], err: unknown): Promise<void> };
}

function checkedPet(input: NewPet) {
  const name = input.name.trim();
  const problem = textProblem(name, PET_NAME);
  if (problem) {
    throw new ValidationError("Invalid pet.", [{ path: "/name", message: `name ${problem}` }]);
  }
  return { id: Bun.randomUUIDv7(), name, age: input.age, type: input.type };
}

export function createPetsService({
  data,
  storage,
  maxPhotoBytes,
  logger,
  deferredRemovals,
}: PetsServiceDeps) {
  const repository = data.repositories.pets;
  /** Files `serve`'s sweep removes later (storage/object-deletion-sweeper.ts). */
  const noteForRemoval = async (fileNames: string[], err: unknown) => {
    await deferredRemovals?.deferRemovals(fileNames, err).catch((deferErr) =>
      logger.error("could not note photo files to remove later", {
        files: fileNames,
        err: deferErr,
      }),
    );
  };
  /** Removal failed (storage briefly away): noted for a retry, so no file is left orphaned. */
  const deferRemovals = async (fileNames: string[], err: unknown) => {
    logger.error("could not remove photo files", { files: fileNames, err });
    await noteForRemoval(fileNames, err);
  };

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

    /** How many pets there are, all or only those with (or without) photos. */
    count(hasPhotos: HasPhotosFilter = undefined): Promise<number> {
      return repository.count(hasPhotos);
    },

    /** Many pets in one statement, under the same rules as `create`; their ids in order. */
    createMany(inputs: NewPet[]): Promise<string[]> {
      return repository.insertMany(inputs.map(checkedPet));
    },

    /** A page of pets and the count of those matching, as GET /pets' JSON text (a PetList). */
    listJson(query: {
      limit: number;
      offset: number;
      hasPhotos: HasPhotosFilter;
    }): Promise<JsonText> {
      return repository.listJson(query, storage.urlBase());
    },

    /**
     * The file is written before its row, and removed again if the row cannot be written, so a
     * failure never leaves a row pointing at nothing nor (short of a crash) a file nobody owns.
     * Its metadata (EXIF GPS, camera serials, XMP, comments) is left out on the way: photo links
     * are public. `file` is read in slices (an upload is a temporary file), never whole.
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
      const format = detectImageFormat(await file.slice(0, 16).bytes());
      if (!format) {
        throw new UnsupportedMediaTypeError(PHOTO_TYPE_UNSUPPORTED);
      }
      const stripped = await stripMetadata(file, format.extension);
      if (stripped.removed.length > 0) {
        logger.debug("photo metadata left out", { removed: stripped.removed });
      }
      const photo = { id: Bun.randomUUIDv7(), fileName: storage.newFileName(format) };
      await storage.save(photo.fileName, stripped.stream()).catch(async (err: unknown) => {
        if (err instanceof StorageUnwritableError && err.mayHaveLanded) {
          logger.warn("photo upload given up on; its file is removed later should it appear", {
            file: photo.fileName,
            err,
          });
          await noteForRemoval([photo.fileName], err);
        }
        throw err;
      });
      try {
        await repository.insertPhoto({
          ...photo,
          petId: petId.toLowerCase(),
          contentType: format.contentType,
          sizeBytes: stripped.size,
        });
      } catch (err) {
        await storage
          .remove(photo.fileName)
          .catch((removeErr) => deferRemovals([photo.fileName], removeErr));
        // The pet was deleted between the check and the insert.
        if (isForeignKeyViolation(err)) throw new NotFoundError(PET_NOT_FOUND);
        throw err;
      }
      return { id: photo.id, url: storage.url(photo.fileName) };
    },

    async deleteMany(ids: string[]): Promise<DeletePetsResult> {
      const unique = [...new Set(ids)];
      const candidates = [...new Set(unique.filter(isUuid).map((id) => id.toLowerCase()))];
      const { deletedIds, fileNames } = await data.transaction(({ pets }) =>
        pets.deleteMany(candidates),
      );
      // Files go after commit: a rolled-back delete must not lose photos. Those that cannot go
      // now (storage briefly away) are noted, and `serve`'s sweep removes them later.
      const removals = await Promise.allSettled(fileNames.map((name) => storage.remove(name)));
      const failed = fileNames.filter((_, i) => removals[i]?.status === "rejected");
      if (failed.length > 0) {
        const reason = removals.find((r) => r.status === "rejected") as PromiseRejectedResult;
        await deferRemovals(failed, reason.reason);
      }
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

    /**
     * Every matching pet, newest first, as the export's JSON in batches of about `chunk` pets
     * (the pets' objects joined by commas), photos as URLs.
     */
    exportJson(hasPhotos: HasPhotosFilter, chunk = 1000): AsyncGenerator<ExportBatch> {
      return repository.exportJson(hasPhotos, storage.urlBase(), chunk);
    },
  };
}

export type PetsService = ReturnType<typeof createPetsService>;
