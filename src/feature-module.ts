/**
 * What a feature (pets, auth, books) hands the composition root (deps.ts): its service, its HTTP
 * routes with their guards, body limit and docs tag, and optionally a gRPC service. The HTTP
 * app (http/app.ts) and the gRPC server (grpc/server.ts) loop over modules and know no feature.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type { AnyElysia } from "elysia";
import type { DocsTag } from "./http/docs.ts";
import type { RouteGuard } from "./http/route-guards.ts";
import type { Logger } from "./logger.ts";

export interface FeatureModule<Service = unknown> {
  readonly name: string;
  readonly service: Service;
  /** The routes. */
  readonly http: AnyElysia;
  /** What its routes require (an API key, a bearer token), checked before a body is read. */
  readonly guards?: readonly RouteGuard[];
  /** The OpenAPI tag its routes carry. */
  readonly docsTag: DocsTag;
  /** A request body limit of the feature's own for a raw path (the JSON limit otherwise). */
  readonly maxBodyBytes?: (path: string) => number | undefined;
  /** The gRPC service, made when a gRPC server starts. */
  readonly rpc?: (server: RpcServerContext) => RpcService;
}

export interface RpcServerContext {
  /** Aborted when the server begins to shut down: streams end. */
  shutdown: AbortSignal;
  logger: Logger;
}

export interface RpcService {
  /** The full name health checks answer for, e.g. `petbooks.v1.BookService`. */
  typeName: string;
  register(router: ConnectRouter): void;
}
