/**
 * HTTP metrics: what `serve` records per request (request-context.ts calls the observer once the
 * answer is made, so a request costs one histogram observation and nothing on its way in), and
 * the `/metrics` route, off the API's auth, behind METRICS_TOKEN when one is set.
 */
import { Elysia } from "elysia";
import { apiKeyChecker } from "../auth/api-key.ts";
import { UnauthorizedError } from "../errors.ts";
import type { Metrics } from "./metrics.ts";

/** Called once per answered request with Elysia's matched route template (none: unmatched). */
export type RequestObserver = (
  request: Request,
  route: string | undefined,
  status: number,
  startedAt: number,
  response: unknown,
) => void;

/** The label of requests no route matched: raw paths would make the label set unbounded. */
export const UNMATCHED_ROUTE = "unmatched";

const STATUS_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/** The body size of an answer when it is known without reading it again, else undefined. */
function knownSize(response: unknown): number | undefined {
  if (typeof response === "string") return Buffer.byteLength(response);
  if (response instanceof Uint8Array || response instanceof ArrayBuffer) return response.byteLength;
  if (response instanceof Blob) return response.size;
  if (response instanceof Response) {
    const length = response.headers.get("content-length");
    return length === null ? undefined : Number(length);
  }
  return undefined;
}

export function httpObserver(metrics: Metrics): RequestObserver {
  const { duration, requestSize, responseSize, authFailures, rateLimited } = metrics.http;
  return (request, matched, status, startedAt, response) => {
    // A Response a handler returned carries its own status; `set.status` never saw it.
    const code = response instanceof Response ? response.status : status;
    const route = matched || UNMATCHED_ROUTE;
    const method = request.method;
    duration.observe(
      [method, route, STATUS_CLASSES[Math.floor(code / 100) - 1] ?? "5xx"],
      (performance.now() - startedAt) / 1000,
    );
    const declared = request.headers.get("content-length");
    if (declared !== null && declared !== "0")
      requestSize.observe([method, route], Number(declared));
    const size = knownSize(response);
    if (size !== undefined) responseSize.observe([method, route], size);
    if (code === 401) authFailures.inc({ route });
    else if (code === 429) rateLimited.inc({ route });
  };
}

export const METRICS_TOKEN_REQUIRED =
  "Metrics need the header Authorization: Bearer <METRICS_TOKEN>.";

/**
 * Whether a request may read the metrics: always without METRICS_TOKEN, otherwise only with
 * `Authorization: Bearer <token>`, compared in constant time (apiKeyChecker hashes both sides).
 */
export function metricsAccess(
  token: string | undefined,
): (authorization: string | null) => boolean {
  if (token === undefined) return () => true;
  const matches = apiKeyChecker(token);
  return (authorization) => {
    const bearer = /^Bearer +(\S+)$/i.exec(authorization ?? "")?.[1];
    return matches(bearer);
  };
}

/** The text exposition format of every metric of the process. */
export async function metricsResponse(metrics: Metrics): Promise<Response> {
  return new Response(await metrics.registry.metrics(), {
    headers: { "content-type": metrics.registry.contentType, "cache-control": "no-store" },
  });
}

/**
 * `GET /metrics` on the API's port, off the API's auth; left out of the OpenAPI document (it is
 * not the API). Without the token (when METRICS_TOKEN is set): the API's 401 problem document.
 */
export function metricsRoutes(metrics: Metrics | undefined, token: string | undefined) {
  const plugin = new Elysia({ name: "metrics" });
  if (!metrics) return plugin;
  const allowed = metricsAccess(token);
  plugin.get(
    "/metrics",
    ({ request }) => {
      if (!allowed(request.headers.get("authorization"))) {
        throw new UnauthorizedError(METRICS_TOKEN_REQUIRED, "metrics-token");
      }
      return metricsResponse(metrics);
    },
    { detail: { hide: true } },
  );
  return plugin;
}
