/** The pets registry as a feature: its service over its repository, its routes and photos. */
import { Elysia } from "elysia";
import { apiKeyGuard } from "../auth/api-key.guard.ts";
import type { Db } from "../db/client.ts";
import { unitOfWork } from "../db/unit-of-work.ts";
import type { FeatureModule } from "../feature-module.ts";
import type { Logger } from "../logger.ts";
import type { PhotoStorage } from "../storage/photo-storage.ts";
import { photoRoutes } from "../storage/photos.http.ts";
import { petsRoutes } from "./pets.http.ts";
import { createPetsRepository } from "./pets.repository.ts";
import { createPetsService, type PetsService, type PetsServiceDeps } from "./pets.service.ts";

export interface PetsModuleDeps {
  db: Db;
  storage: PhotoStorage;
  /** X-API-KEY, required by every /pets route (photo links are public). */
  apiKey: string;
  maxPhotoBytes: number;
  logger: Logger;
  deferredRemovals?: PetsServiceDeps["deferredRemovals"];
}

/** Room for the multipart envelope around the largest accepted photo. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
const PHOTO_UPLOAD_PATH = /^\/pets\/[^/]+\/photo\/?$/;

function maxRequestBytes(maxPhotoBytes: number) {
  return maxPhotoBytes + MULTIPART_OVERHEAD_BYTES;
}

/** The pets service alone, for commands that serve nothing (export-pets, seed). */
export function createPetsServiceFor(deps: Omit<PetsModuleDeps, "apiKey">): PetsService {
  return createPetsService({
    data: unitOfWork(deps.db, (db) => ({ pets: createPetsRepository(db) })),
    storage: deps.storage,
    maxPhotoBytes: deps.maxPhotoBytes,
    logger: deps.logger.child({ module: "pets" }),
    deferredRemovals: deps.deferredRemovals,
  });
}

export function createPetsModule(deps: PetsModuleDeps): FeatureModule<PetsService> {
  const service = createPetsServiceFor(deps);
  const uploadLimit = maxRequestBytes(deps.maxPhotoBytes);
  return {
    name: "pets",
    service,
    docsTag: { name: "pets", description: "Dogs and cats, their photos, bulk delete." },
    http: new Elysia({ name: "pets-module" })
      .use(photoRoutes(deps.storage, deps.logger.child({ module: "storage" })))
      .use(petsRoutes(service)),
    guards: [apiKeyGuard("/pets", deps.apiKey)],
    // Matched on the raw path, like the router: a photo upload may carry the photo.
    maxBodyBytes: (path) => (PHOTO_UPLOAD_PATH.test(path) ? uploadLimit : undefined),
  };
}
