/** The `serve` HTTP application, assembled from feature plugins. */
import { Elysia } from "elysia";
import { apiKeyGuard } from "../auth/api-key.guard.ts";
import { authRoutes } from "../auth/auth.http.ts";
import type { AuthService } from "../auth/auth.service.ts";
import { bearerGuard } from "../auth/bearer.guard.ts";
import { clientAddressResolver } from "../auth/client-address.ts";
import { booksRoutes } from "../books/books.http.ts";
import type { BooksService } from "../books/books.service.ts";
import type { Database } from "../db/client.ts";
import type { Logger } from "../logger.ts";
import { httpObserver, metricsRoutes } from "../observability/http-metrics.ts";
import { httpTracing } from "../observability/http-tracing.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Tracing } from "../observability/tracing.ts";
import { petsRoutes } from "../pets/pets.http.ts";
import type { PetsService } from "../pets/pets.service.ts";
import type { PhotoStorage } from "../storage/photo-storage.ts";
import { photoRoutes } from "../storage/photos.http.ts";
import { createCors } from "./cors.ts";
import { docs } from "./docs.ts";
import { healthRoutes, type OutboxProbe } from "./health.http.ts";
import { InFlight } from "./in-flight.ts";
import { MAX_JSON_BODY_BYTES } from "./limits.ts";
import { requestContext } from "./request-context.ts";

export { MAX_JSON_BODY_BYTES };

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
  /** The outbox relay, for `/readyz?verbose`. */
  relay?: OutboxProbe;
  /** TRUSTED_PROXIES: peers whose X-Forwarded-For names the client (auth/client-address.ts). */
  trustedProxies?: string[];
  /** CORS_ORIGINS: browser origins allowed to call the API (cors.ts); none, or unset: off. */
  corsOrigins?: string[];
  /** The process' metrics, served at `/metrics` (METRICS_TOKEN: `metricsToken`); none: off. */
  metrics?: Metrics | undefined;
  metricsToken?: string | undefined;
  /** A span per request (observability/tracing.ts); none: tracing is off. */
  tracing?: Tracing | undefined;
}

export function maxRequestBytes(maxPhotoBytes: number) {
  return maxPhotoBytes + MULTIPART_OVERHEAD_BYTES;
}

/**
 * Bun's own cap (maxRequestBodySize), out of the way: Bun answers a bare 413 with no problem
 * document, and before the app runs, so before the auth guards' 401. The app enforces every
 * limit itself, on the bytes as they arrive (see parsers.ts); Bun does not buffer a body that
 * nobody reads, so a route that takes none costs nothing whatever is sent to it.
 */
export const SERVER_BODY_LIMIT_BYTES = Number.MAX_SAFE_INTEGER;

export function createApp(deps: AppDeps) {
  return new Elysia({ normalize: false })
    .use(httpTracing(deps.tracing))
    .use(
      requestContext({
        logger: deps.logger.child({ module: "http" }),
        inFlight: deps.inFlight ?? new InFlight(),
        cors: createCors(deps.corsOrigins ?? []),
        maxBodyBytes: (path) =>
          // Matched on the raw path, like the router: a photo upload may carry the photo.
          PHOTO_UPLOAD_PATH.test(path) ? maxRequestBytes(deps.maxPhotoBytes) : MAX_JSON_BODY_BYTES,
        observe: deps.metrics && httpObserver(deps.metrics),
      }),
    )
    .use(metricsRoutes(deps.metrics, deps.metricsToken))
    .use(docs())
    .use(healthRoutes(deps.database, deps.relay))
    .use(photoRoutes(deps.storage, deps.logger.child({ module: "storage" })))
    .use(apiKeyGuard("/pets", deps.apiKey))
    .use(petsRoutes(deps.pets))
    .use(bearerGuard(deps.auth, ["/books", "/auth/me"]))
    .use(authRoutes(deps.auth, { clientAddress: clientAddressResolver(deps.trustedProxies) }))
    .use(booksRoutes(deps.books));
}

export type App = ReturnType<typeof createApp>;
