/**
 * The metrics listener of a process without an HTTP API (`grpc`): `GET /metrics` on
 * HOST:METRICS_PORT, nothing else.
 */
import { listenerUrl } from "../config.ts";
import { METRICS_CHALLENGE } from "../http/challenges.ts";
import type { Logger } from "../logger.ts";
import { METRICS_TOKEN_REQUIRED, metricsAccess, metricsResponse } from "./http-metrics.ts";
import type { Metrics } from "./metrics.ts";

export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  token: string | undefined;
  logger: Logger;
}

export interface MetricsServer {
  port: number;
  url: string;
  stop(): Promise<void>;
}

export function startMetricsServer(metrics: Metrics, options: MetricsServerOptions): MetricsServer {
  const allowed = metricsAccess(options.token);
  const server = Bun.serve({
    hostname: options.host,
    port: options.port,
    // Another process on the port must make this one fail, not share its scrapes.
    reusePort: false,
    async fetch(request) {
      const { pathname } = new URL(request.url);
      if (pathname !== "/metrics") return new Response("not found\n", { status: 404 });
      if (request.method !== "GET" && request.method !== "HEAD") {
        return new Response("method not allowed\n", {
          status: 405,
          headers: { allow: "GET, HEAD" },
        });
      }
      if (!allowed(request.headers.get("authorization"))) {
        return new Response(`${METRICS_TOKEN_REQUIRED}\n`, {
          status: 401,
          headers: { "www-authenticate": METRICS_CHALLENGE },
        });
      }
      return metricsResponse(metrics);
    },
  });
  const port = server.port as number;
  const url = `${listenerUrl(options.host, port)}/metrics`;
  // Not "listening": that line announces the API itself, and tests wait for it.
  options.logger.info("metrics listening", { url });
  return {
    port,
    url,
    async stop() {
      await server.stop(true);
    },
  };
}
