/**
 * The OpenAPI document (generated from the route schemas) and Swagger UI, whose assets are
 * embedded and served by the app itself so /docs works with no internet access.
 */
import { swagger } from "@elysiajs/swagger";
import { Elysia } from "elysia";
import swaggerCssPath from "swagger-ui-dist/swagger-ui.css" with { type: "file" };
import swaggerBundlePath from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };
import packageJson from "../../package.json";
import { NotFoundError } from "../errors.ts";
import { tidyOpenApi } from "./openapi-tidy.ts";
import { DOCS_CSP } from "./security-headers.ts";

export const OPENAPI_PATH = "/docs/json";

const page = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <meta name="viewport" content="width=device-width, initial-scale=1" />
  <title>petbooks API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css" />
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/swagger-init.js"></script>
</body>
</html>`;

// A file rather than an inline script, so the page's CSP (DOCS_CSP) needs no 'unsafe-inline'.
const init = `window.ui = SwaggerUIBundle({ url: "${OPENAPI_PATH}", dom_id: "#swagger-ui", persistAuthorization: true });\n`;

const JS = "text/javascript; charset=utf-8";
const assets: Record<string, { body: () => Blob | string; type: string }> = {
  "swagger-ui-bundle.js": { body: () => Bun.file(swaggerBundlePath), type: JS },
  "swagger-ui.css": { body: () => Bun.file(swaggerCssPath), type: "text/css; charset=utf-8" },
  "swagger-init.js": { body: () => init, type: JS },
};

export interface DocsTag {
  name: string;
  description: string;
}

/** `tags`: the features' OpenAPI tags, in the order the document lists them. */
export function docs(tags: readonly DocsTag[]) {
  return (
    new Elysia({ name: "docs" })
      // The plugin's document, corrected on its way out (see openapi-tidy.ts). Hooks only apply to
      // routes registered after them, so this comes before the plugin; local, so it runs on the
      // docs' routes only, not on every request of the app.
      .onAfterHandle(({ path, response }) =>
        // Elysia also serves the route with a trailing slash: that copy must be tidied too.
        path.replace(/\/+$/, "") === OPENAPI_PATH && response && typeof response === "object"
          ? tidyOpenApi(response as Parameters<typeof tidyOpenApi>[0])
          : undefined,
      )
      .use(
        swagger({
          provider: "swagger-ui",
          // The plugin's own page loads Swagger UI from a CDN; ours below does not.
          path: "/docs/cdn",
          specPath: OPENAPI_PATH,
          exclude: [/^\/docs/],
          documentation: {
            // The schemas use JSON Schema keywords (const, examples) that only OpenAPI 3.1 allows.
            openapi: "3.1.0",
            info: {
              title: "petbooks",
              version: packageJson.version,
              description:
                "Pets registry (API key in `X-API-KEY`) and books catalogue (bearer token from " +
                "`POST /auth/token`; in Swagger UI use Authorize with your username and password). " +
                "Errors are RFC 9457 problem details.",
            },
            tags: [...tags, { name: "health", description: "Liveness and readiness probes." }],
            components: {
              securitySchemes: {
                ApiKeyAuth: { type: "apiKey", in: "header", name: "X-API-KEY" },
                OAuth2Password: {
                  type: "oauth2",
                  description: "Log in with a username and password (OAuth2 password grant).",
                  flows: { password: { tokenUrl: "/auth/token", scopes: {} } },
                },
                BearerToken: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
              },
            },
          },
        }),
      )
      .get(
        "/docs",
        () =>
          new Response(page, {
            headers: {
              "content-type": "text/html; charset=utf-8",
              // The app's default policy (no scripts at all) would leave the page blank.
              "content-security-policy": DOCS_CSP,
            },
          }),
        { detail: { hide: true } },
      )
      .get(
        "/docs/assets/:name",
        ({ params, set }) => {
          const asset = assets[params.name];
          if (!asset) throw new NotFoundError("No such asset.");
          set.headers["content-type"] = asset.type;
          set.headers["cache-control"] = "public, max-age=86400";
          return asset.body();
        },
        { detail: { hide: true } },
      )
  );
}
