/**
 * The gRPC server: ConnectRPC on node:http2 in cleartext (h2c), so gRPC, gRPC-Web and Connect
 * clients all work. Bun.serve cannot carry gRPC: it sends no HTTP/2 trailers.
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { BooksRepository } from "../books/books.repository.ts";
import { bookRpc } from "../books/books.rpc.ts";
import type { BooksService } from "../books/books.service.ts";
import {
  createPageTokens,
  type PageTokens,
  pageTokenKey,
  randomPageTokenKey,
} from "../books/page-tokens.ts";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { BookService } from "../gen/petbooks/v1/books_pb.ts";
import type { Logger } from "../logger.ts";
import { type GrpcAuth, requireToken } from "./auth.ts";
import { answeringUndecodable } from "./decode-errors.ts";
import { healthService } from "./health.ts";
import { endOnAbort, logCalls, mapErrors } from "./interceptors.ts";
import { registerReflection } from "./reflection.ts";

export interface GrpcServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  books: Pick<BooksService, "get">;
  repository: Pick<BooksRepository, "listAfter" | "count">;
  /** Health is SERVING while this resolves. */
  ping: () => Promise<void>;
  /** Who may call BookService (GRPC_AUTH): bearer tokens, or anyone (auth.ts). */
  auth: GrpcAuth;
  logger: Logger;
  /** How often a health Watch checks the database again. */
  healthWatchIntervalMs?: number;
  /** A slower ping makes health NOT_SERVING. */
  healthPingTimeoutMs?: number;
  /**
   * The secret ListBooks page tokens are signed with (a key is derived from it): JWT_SECRET, so
   * every replica shares it. Without one (only allowed with GRPC_AUTH=none), a random key of
   * this process, with a warning.
   */
  pageTokenSecret?: string | undefined;
}

export interface GrpcServer {
  /** The port it listens on. */
  port: number;
  /** `http://host:port`, for clients. */
  url: string;
  /**
   * Stops accepting connections and calls, lets in-flight calls finish for at most `graceMs`,
   * then cuts whatever is left. Idempotent.
   */
  close(graceMs?: number): Promise<void>;
}

/** How long calls get to report UNAVAILABLE once the grace period is over. */
const CUTOFF_MS = 250;

export function grpcRoutes(
  options: GrpcServerOptions,
  shutdown: AbortSignal,
  pageTokens: PageTokens,
) {
  return (router: ConnectRouter) => {
    router.service(BookService, bookRpc({ ...options, pageTokens }));
    router.service(
      Health,
      healthService({
        ping: options.ping,
        services: [BookService.typeName],
        watchIntervalMs: options.healthWatchIntervalMs,
        pingTimeoutMs: options.healthPingTimeoutMs,
        shutdown,
      }),
    );
    registerReflection(router);
  };
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const logger = options.logger.child({ module: "grpc" });
  /** Aborted when shutdown begins: health turns NOT_SERVING, watches end. */
  const shutdown = new AbortController();
  /** Aborted when the grace period is over: the calls still running end UNAVAILABLE. */
  const cutoff = new AbortController();
  if (options.auth.mode === "none") {
    logger.warn(
      "GRPC_AUTH=none: BookService answers every caller without a token; only for a trusted private network",
    );
  }
  if (!options.pageTokenSecret) {
    logger.warn(
      "JWT_SECRET is not set: ListBooks page tokens are signed with a random key of this process, so they do not survive a restart or work across replicas",
    );
  }
  const pageTokens = createPageTokens(
    options.pageTokenSecret ? pageTokenKey(options.pageTokenSecret) : randomPageTokenKey(),
  );
  const handler = connectNodeAdapter({
    routes: (router) => {
      grpcRoutes(options, shutdown.signal, pageTokens)(router);
      // Unary handlers answer a request they cannot decode themselves (see decode-errors.ts).
      const handlers = router.handlers.map((h) => answeringUndecodable(h, logger, options.auth));
      router.handlers.splice(0, router.handlers.length, ...handlers);
    },
    // The log line wraps the translation, so it records the code the caller actually got.
    interceptors: [logCalls(logger), mapErrors(logger), requireToken(options.auth), endOnAbort],
    shutdownSignal: cutoff.signal,
  });
  const server = http2.createServer({}, (req, res) => {
    // Bun's node:http2 has handed over streams that were already gone: nothing to answer there.
    if (req.stream.destroyed || res.destroyed) return;
    try {
      handler(req, res);
    } catch (err) {
      logger.warn("request could not be handled", { err });
    }
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
    // A client that vanishes mid-call is routine; it must never become an uncaught 'error'.
    session.on("error", (err) => logger.debug("http2 session error", { err }));
  });
  server.on("stream", (stream) => {
    stream.on("error", (err) => logger.debug("http2 stream error", { err }));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => logger.error("http2 server error", { err }));
  const { port } = server.address() as AddressInfo;
  const urlHost = options.host.includes(":") ? `[${options.host}]` : options.host;

  let closing: Promise<void> | undefined;
  const close = async (graceMs: number) => {
    shutdown.abort();
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    // GOAWAY: clients open no new streams here, and each session ends when its last call does.
    for (const session of sessions) if (!session.closed) session.close();
    const deadline = performance.now() + graceMs;
    while (sessions.size > 0 && performance.now() < deadline) await Bun.sleep(20);
    if (sessions.size > 0) {
      logger.warn("in-flight calls did not finish in time; closing them", {
        sessions: sessions.size,
        grace_ms: graceMs,
      });
      // Give them a status clients know to retry, then cut whatever still holds on.
      cutoff.abort(new ConnectError("The server is shutting down; try again.", Code.Unavailable));
      const last = performance.now() + CUTOFF_MS;
      while (sessions.size > 0 && performance.now() < last) await Bun.sleep(10);
      for (const session of sessions) session.destroy();
    }
    await stopped;
  };
  return {
    port,
    url: `http://${urlHost}:${port}`,
    close(graceMs = 10_000) {
      closing ??= close(graceMs);
      return closing;
    },
  };
}
