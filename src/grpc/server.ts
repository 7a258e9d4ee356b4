/**
 * The gRPC server: ConnectRPC on node:http2 in cleartext (h2c), so gRPC, gRPC-Web and Connect
 * clients all work, and HTTP/1.1 on the same port for Connect and gRPC-Web (listener.ts).
 * Bun.serve cannot carry gRPC: it sends no HTTP/2 trailers.
 */
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import { Code, ConnectError, type ConnectRouter, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { listenerUrl } from "../config.ts";
import type { FeatureModule } from "../feature-module.ts";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import type { Logger } from "../logger.ts";
import {
  countCallBeforeInterceptors,
  grpcMetricsInterceptor,
} from "../observability/grpc-metrics.ts";
import { grpcTracingInterceptor } from "../observability/grpc-tracing.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Tracing } from "../observability/tracing.ts";
import type { GrpcAuth } from "./auth.ts";
import { RESET_STREAM } from "./book-watch.ts";
import { answeringUndecodable } from "./decode-errors.ts";
import { healthService } from "./health.ts";
import { GRPC_READ_MAX_BYTES, serveCalls } from "./interceptors.ts";
import { dualProtocolListener } from "./listener.ts";
import { registerReflection } from "./reflection.ts";

export interface GrpcServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The features' services (FeatureModule.rpc), made when the server starts. */
  services: readonly NonNullable<FeatureModule["rpc"]>[];
  /** Health is SERVING while this resolves. */
  ping: () => Promise<void>;
  /** Who may call BookService (GRPC_AUTH): bearer tokens, or anyone (auth.ts). */
  auth: GrpcAuth;
  logger: Logger;
  /** How often a health Watch checks the database again. */
  healthWatchIntervalMs?: number;
  /** A slower ping makes health NOT_SERVING. */
  healthPingTimeoutMs?: number;
  /** The process' metrics: every call is counted (grpc_server_*); none: METRICS=off. */
  metrics?: Metrics | undefined;
  /** A span per call (observability/tracing.ts); none: tracing is off. */
  tracing?: Tracing | undefined;
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

function grpcRoutes(options: GrpcServerOptions, shutdown: AbortSignal) {
  return (router: ConnectRouter) => {
    const services = options.services.map((rpc) => rpc({ shutdown, logger: options.logger }));
    for (const service of services) service.register(router);
    router.service(
      Health,
      healthService({
        ping: options.ping,
        services: services.map((s) => s.typeName),
        watchIntervalMs: options.healthWatchIntervalMs,
        pingTimeoutMs: options.healthPingTimeoutMs,
        shutdown,
      }),
    );
    registerReflection(router);
  };
}

/** What resetterOf destroys a call's stream (or connection) with. */
const cut = () =>
  Object.assign(new Error("WatchBooks stream reset: the client stopped reading"), {
    code: "ERR_STREAM_DESTROYED",
  });

/**
 * Cuts one call: an HTTP/2 stream with RST_STREAM ENHANCE_YOUR_CALM (gRPC clients report it as
 * RESOURCE_EXHAUSTED; the connection and its other calls go on), an HTTP/1.1 connection whole.
 * Bun settles a write pending on an HTTP/2 stream that is only closed never, which would leave
 * the call running for good: the stream is destroyed too. The error it is destroyed with is one
 * Connect takes for a vanished client (ERR_STREAM_DESTROYED), so it does not report the call's
 * end as a failure of its own on stderr.
 */
function resetterOf(req: http2.Http2ServerRequest | http.IncomingMessage): () => void {
  if ("stream" in req) {
    return () => {
      if (req.stream.destroyed) return;
      req.stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      req.stream.destroy(cut());
    };
  }
  return () => req.socket.destroy(cut());
}

/** gRPC itself (not gRPC-Web, not Connect) needs HTTP/2: its status travels in trailers. */
function isGrpcOverHttp1(req: http.IncomingMessage): boolean {
  const type = req.headers["content-type"] ?? "";
  return type.startsWith("application/grpc") && !type.startsWith("application/grpc-web");
}

export const GRPC_NEEDS_HTTP2 =
  "gRPC needs HTTP/2 (h2c with prior knowledge); over HTTP/1.1, use gRPC-Web or Connect.";

/**
 * Answered over HTTP/1.1, a gRPC call would end 200 with its status lost (HTTP/1.1 has no
 * trailers here): it is refused instead, as HTTP says of a version it does not serve.
 */
function refuseGrpcOverHttp1(res: http.ServerResponse): void {
  res.writeHead(505, { "content-type": "text/plain; charset=utf-8" }).end(GRPC_NEEDS_HTTP2);
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
  const handler = connectNodeAdapter({
    routes: (router) => {
      grpcRoutes(options, shutdown.signal)(router);
      // Unary handlers answer a request they cannot decode themselves (see decode-errors.ts).
      const { metrics } = options;
      const count =
        metrics &&
        ((call: Parameters<typeof countCallBeforeInterceptors>[1]) =>
          countCallBeforeInterceptors(metrics, call));
      const handlers = router.handlers.map((h) =>
        answeringUndecodable(h, logger, options.auth, count),
      );
      router.handlers.splice(0, router.handlers.length, ...handlers);
    },
    interceptors: [
      // Outermost: the span holds the call's log line; the metrics see the code the caller gets.
      ...(options.tracing ? [grpcTracingInterceptor(options.tracing)] : []),
      ...(options.metrics ? [grpcMetricsInterceptor(options.metrics)] : []),
      serveCalls(logger, options.auth),
    ],
    // Every request is read whole, and inflated, before the token is checked: without a cap a
    // caller with no token could make the server hold gigabytes (Connect's default is 4 GiB).
    readMaxBytes: GRPC_READ_MAX_BYTES,
    shutdownSignal: cutoff.signal,
    // What a call may do to its own HTTP stream: a WatchBooks client that stopped reading is cut.
    contextValues: (req) => createContextValues().set(RESET_STREAM, resetterOf(req)),
  });
  const answer = (
    req: http2.Http2ServerRequest | http.IncomingMessage,
    res: http2.Http2ServerResponse | http.ServerResponse,
  ) => {
    // Bun's node:http2 has handed over streams that were already gone: nothing to answer there.
    if ((req as http2.Http2ServerRequest).stream?.destroyed || res.destroyed) return;
    try {
      handler(req as http2.Http2ServerRequest, res as http2.Http2ServerResponse);
    } catch (err) {
      logger.warn("request could not be handled", { err });
    }
  };
  const server = http2.createServer({}, answer);
  const http1 = http.createServer((req, res) =>
    isGrpcOverHttp1(req) ? refuseGrpcOverHttp1(res) : answer(req, res),
  );
  /** HTTP/1.1 connections, which (unlike sessions) the grace period waits for too. */
  const http1Sockets = new Set<Socket>();
  http1.on("connection", (socket: Socket) => {
    http1Sockets.add(socket);
    socket.on("close", () => http1Sockets.delete(socket));
  });
  const listener = dualProtocolListener(server, http1, logger);
  const open = () => sessions.size + http1Sockets.size;
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
    // A client that vanishes mid-call is routine; it must never become an uncaught 'error'.
    session.on("error", (err) => logger.debug("http2 session error", { err }));
  });
  const onStreamError = (err: Error) => logger.debug("http2 stream error", { err });
  server.on("stream", (stream) => stream.on("error", onStreamError));

  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(options.port, options.host, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  listener.on("error", (err) => logger.error("grpc listener error", { err }));
  const { port } = listener.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  const close = async (graceMs: number) => {
    shutdown.abort();
    const stopped = new Promise<void>((resolve) => listener.close(() => resolve()));
    listener.destroyUnrouted();
    // GOAWAY: clients open no new streams here, and each session ends when its last call does.
    for (const session of sessions) if (!session.closed) session.close();
    // HTTP/1.1: idle keep-alive connections go now, the others after their response.
    http1.closeIdleConnections();
    const deadline = performance.now() + graceMs;
    while (open() > 0 && performance.now() < deadline) {
      await Bun.sleep(20);
      http1.closeIdleConnections();
    }
    if (open() > 0) {
      logger.warn("in-flight calls did not finish in time; closing them", {
        sessions: sessions.size,
        http1_connections: http1Sockets.size,
        grace_ms: graceMs,
      });
      // Give them a status clients know to retry, then cut whatever still holds on.
      cutoff.abort(new ConnectError("The server is shutting down; try again.", Code.Unavailable));
      const last = performance.now() + CUTOFF_MS;
      while (open() > 0 && performance.now() < last) await Bun.sleep(10);
      for (const session of sessions) session.destroy();
      for (const socket of http1Sockets) socket.destroy();
    }
    await stopped;
  };
  return {
    port,
    url: listenerUrl(options.host, port),
    close(graceMs = 10_000) {
      closing ??= close(graceMs);
      return closing;
    },
  };
}
