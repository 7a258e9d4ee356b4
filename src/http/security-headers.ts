/**
 * The security headers of every answer (request-context.ts sets them before any route runs, so
 * errors, 404s and photos carry them too), and the looser policy of the Swagger UI page.
 */

/**
 * JSON and photos are never pages: nothing of theirs may run, load or be framed. A route's own
 * header wins over these (docs.ts gives its page DOCS_CSP).
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  // The old way of frame-ancestors 'none', for browsers without CSP level 2.
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
};

/**
 * Swagger UI, all from this origin (docs.ts serves its files): its scripts and styles, the
 * OpenAPI document and the requests of "Try it out" (`connect-src`), its inline SVG icons
 * (`data:` images). No inline script: the page's own start-up code is a file too.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");
