/**
 * CORS for browser apps on other origins (CORS_ORIGINS). Not @elysiajs/cors: it answers
 * preflights from a route, so after the auth guards' onRequest hooks (a 401 for `OPTIONS /pets`),
 * and by default it reflects any origin and allows credentials. Here a preflight is answered in
 * request-context.ts's onRequest, before any guard, and only listed origins get any CORS header.
 */

/** What a browser app may send: the credentials of both APIs, JSON bodies, its own request id. */
export const CORS_ALLOWED_HEADERS = "Authorization, Content-Type, X-API-KEY, X-Request-Id";
export const CORS_ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE";
/**
 * What a browser app may read besides the safelisted headers: the request id to quote, when to
 * retry (429, 503), and what a 401 asks for.
 */
export const CORS_EXPOSED_HEADERS = "X-Request-Id, Retry-After, WWW-Authenticate";
/** How long a browser may reuse a preflight's answer (Chromium caps it at 7200). */
export const CORS_MAX_AGE_SECONDS = 600;

export interface Cors {
  /**
   * The CORS headers of the answer to a request carrying `origin` (none for an origin not
   * listed, or no origin), and `Vary: Origin` whenever the answer depends on it.
   */
  headers(origin: string | null): Record<string, string>;
  /** A preflight (OPTIONS with Access-Control-Request-Method) from a listed origin. */
  isAllowedPreflight(request: Request): boolean;
  /** The extra headers of the answer to such a preflight. */
  preflightHeaders(): Record<string, string>;
}

/**
 * `origins` as config.ts parses CORS_ORIGINS: `["*"]` is any origin; none turns CORS off.
 * Credentials (cookies) are never allowed: the API takes its credentials from headers, which a
 * browser app sends itself, so `*` is safe.
 */
export function createCors(origins: readonly string[]): Cors | undefined {
  if (origins.length === 0) return undefined;
  const anyOrigin = origins.includes("*");
  const listed = new Set(origins);
  const allowed = (origin: string | null): origin is string =>
    origin !== null && (anyOrigin || listed.has(origin));
  return {
    headers(origin): Record<string, string> {
      if (anyOrigin) {
        return {
          "access-control-allow-origin": "*",
          "access-control-expose-headers": CORS_EXPOSED_HEADERS,
        };
      }
      // A cache must not hand one origin's answer to another, nor to a request with none.
      if (!allowed(origin)) return { vary: "Origin" };
      return {
        "access-control-allow-origin": origin,
        "access-control-expose-headers": CORS_EXPOSED_HEADERS,
        vary: "Origin",
      };
    },
    isAllowedPreflight(request) {
      return (
        request.method === "OPTIONS" &&
        request.headers.has("access-control-request-method") &&
        allowed(request.headers.get("origin"))
      );
    },
    preflightHeaders() {
      return {
        "access-control-allow-methods": CORS_ALLOWED_METHODS,
        "access-control-allow-headers": CORS_ALLOWED_HEADERS,
        "access-control-max-age": String(CORS_MAX_AGE_SECONDS),
      };
    },
  };
}
