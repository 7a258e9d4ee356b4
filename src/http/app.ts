/** The `serve` HTTP application, assembled from feature plugins. */
import { Elysia } from "elysia";
import { apiKeyGuard } from "../auth/api-key.guard.ts";
import { authRoutes } from "../auth/auth.http.ts";
import type { AuthService } from "../auth/auth.service.ts";
import { bearerGuard } from "../auth/bearer.guard.ts";
import { booksRoutes } from "../books/books.http.ts";
import type { BooksService } from "../books/books.service.ts";
import type { Database } from "../db/client.ts";
import type { Logger } from "../logger.ts";
import { petsRoutes } from "../pets/pets.http.ts";
import type { PetsService } from "../pets/pets.service.ts";
import type { PhotoStorage } from "../storage/photo-storage.ts";
import { photoRoutes } from "../storage/photos.http.ts";
import { docs } from "./docs.ts";
import { healthRoutes } from "./health.http.ts";
import { InFlight } from "./in-flight.ts";
import { requestContext } from "./request-context.ts";

export const MAX_JSON_BODY_BYTES = 1024 * 1024;
/** Room for the multipart envelope around the largest accepted photo. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
const PHOTO_UPLOAD_PATH = /^\/pets\/[^/]+\/photo\/?$/;

export interface AppDeps {
  apiKey: string;
  maxPhotoBytes: number;
  logger: Logger;
  database: Database;
  storage: PhotoStorage;
  pets: PetsService;
  auth: AuthService;
  books: BooksService;
  /** Counts the requests being handled, for a graceful shutdown (see drain.ts). */
  inFlight?: InFlight;
}

export function maxRequestBytes(maxPhotoBytes: number) {
  return maxPhotoBytes + MULTIPART_OVERHEAD_BYTES;
}

/**
 * Bun's own cap, above the app's limits: a body whose Content-Length is too large gets the app's
 * 413 problem response; only a chunked body that runs past this gets Bun's bare 413.
 */
export function serverBodyLimit(maxPhotoBytes: number) {
  return maxRequestBytes(maxPhotoBytes) + MAX_JSON_BODY_BYTES;
}

export function createApp(deps: AppDeps) {
  return new Elysia({ normalize: false })
    .use(
      requestContext({
        logger: deps.logger.child({ module: "http" }),
        inFlight: deps.inFlight ?? new InFlight(),
        maxBodyBytes: (path) =>
          // Matched on the raw path, like the router: a photo upload may carry the photo.
          PHOTO_UPLOAD_PATH.test(path) ? maxRequestBytes(deps.maxPhotoBytes) : MAX_JSON_BODY_BYTES,
      }),
    )
    .use(docs())
    .use(healthRoutes(deps.database))
    .use(photoRoutes(deps.storage))
    .use(apiKeyGuard("/pets", deps.apiKey))
    .use(petsRoutes(deps.pets))
    .use(bearerGuard(deps.auth, ["/books", "/auth/me"]))
    .use(authRoutes(deps.auth))
    .use(booksRoutes(deps.books));
}

export type App = ReturnType<typeof createApp>;
