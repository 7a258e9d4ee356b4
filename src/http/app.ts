/** The `serve` HTTP application: the cross-cutting plugins, then each feature module's routes. */
import { Elysia } from "elysia";
import type { Database } from "../db/client.ts";
import type { FeatureModule } from "../feature-module.ts";
import type { Logger } from "../logger.ts";
import { httpObserver, metricsRoutes } from "../observability/http-metrics.ts";
import { httpTracing } from "../observability/http-tracing.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Tracing } from "../observability/tracing.ts";
import { allowedMethods } from "./allowed-methods.ts";
import { createCors } from "./cors.ts";
import { docs } from "./docs.ts";
import { healthRoutes, type OutboxProbe } from "./health.http.ts";
import { InFlight } from "./in-flight.ts";
import { MAX_JSON_BODY_BYTES } from "./limits.ts";
import { requestContext } from "./request-context.ts";
import { routeGuards } from "./route-guards.ts";

export { MAX_JSON_BODY_BYTES };

export interface AppDeps {
  /** The features, in the order their routes and guards are registered. */
  modules: readonly FeatureModule[];
  logger: Logger;
  database: Database;
  /** Counts the requests being handled, for a graceful shutdown (see drain.ts). */
  inFlight?: InFlight;
  /** The outbox relay, for `/readyz?verbose`. */
  relay?: OutboxProbe;
  /** CORS_ORIGINS: browser origins allowed to call the API (cors.ts); none, or unset: off. */
  corsOrigins?: string[];
  /** The process' metrics, served at `/metrics` (METRICS_TOKEN: `metricsToken`); none: off. */
  metrics?: Metrics | undefined;
  metricsToken?: string | undefined;
  /** A span per request (observability/tracing.ts); none: tracing is off. */
  tracing?: Tracing | undefined;
}

/**
 * Bun's own cap (maxRequestBodySize), out of the way: Bun answers a bare 413 with no problem
 * document, and before the app runs, so before the auth guards' 401. The app enforces every
 * limit itself, on the bytes as they arrive (see parsers.ts); Bun does not buffer a body that
 * nobody reads, so a route that takes none costs nothing whatever is sent to it.
 */
export const SERVER_BODY_LIMIT_BYTES = Number.MAX_SAFE_INTEGER;

/** The first limit a module claims for the path, the JSON limit otherwise. */
function maxBodyBytes(modules: readonly FeatureModule[]) {
  const claims = modules.flatMap((m) => (m.maxBodyBytes ? [m.maxBodyBytes] : []));
  return (path: string) => {
    for (const claim of claims) {
      const limit = claim(path);
      if (limit !== undefined) return limit;
    }
    return MAX_JSON_BODY_BYTES;
  };
}

export function createApp(deps: AppDeps) {
  // The routes are read on the first 404, when every one below is registered.
  const methodsOf = allowedMethods(() => app.routes);
  // Every route compiled at startup: compiling one sets keywords on the shared schemas the
  // OpenAPI document is made from, so compiled on first use, the document depended on which
  // routes had answered before it was first asked for.
  const app = new Elysia({ normalize: false, precompile: true })
    .use(
      requestContext({
        logger: deps.logger.child({ module: "http" }),
        inFlight: deps.inFlight ?? new InFlight(),
        cors: createCors(deps.corsOrigins ?? []),
        maxBodyBytes: maxBodyBytes(deps.modules),
        observe: deps.metrics && httpObserver(deps.metrics),
        allowedMethods: methodsOf,
      }),
    )
    // After requestContext: Elysia nests a later plugin's wrap outside an earlier one's, and the
    // span must be current when the request's end is logged.
    .use(httpTracing(deps.tracing))
    .use(metricsRoutes(deps.metrics, deps.metricsToken))
    .use(docs(deps.modules.map((m) => m.docsTag)))
    .use(healthRoutes(deps.database, deps.relay))
    .use(routeGuards(deps.modules.flatMap((m) => m.guards ?? [])));
  for (const module of deps.modules) app.use(module.http);
  return app;
}
