import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createTestApp, readJson, type TestApp } from "../testing/app.ts";
import {
  CODE_BY_STATUS,
  errorResponses,
  invalidExamples,
  keywordUses,
  nonStandardKeywords,
  problemContent,
} from "../testing/openapi-checks.ts";
import { API_KEY_CHALLENGE } from "./challenges.ts";
import { LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, OFFSET_MAX } from "./pagination.ts";
import { DOCS_CSP, SECURITY_HEADERS } from "./security-headers.ts";

let t: TestApp;
// biome-ignore lint/suspicious/noExplicitAny: an OpenAPI document is walked dynamically here
let doc: any;

// A migrated database and the whole app: generous, no speed assumed on a busy machine.
beforeAll(async () => {
  t = await createTestApp();
  doc = await readJson(t.request("/docs/json", { apiKey: null }));
}, 120_000);
afterAll(() => t?.close(), 60_000);

describe("OpenAPI document", () => {
  // Compiles the whole OpenAPI 3.1 meta-schema: seconds on a busy machine.
  test("passes an independent OpenAPI validator", async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  }, 60_000);

  test("declares the API-key scheme on every pets operation", () => {
    expect(doc.components.securitySchemes.ApiKeyAuth).toEqual({
      type: "apiKey",
      in: "header",
      name: "X-API-KEY",
    });
    for (const [path, item] of Object.entries(doc.paths)) {
      if (!path.startsWith("/pets")) continue;
      for (const op of Object.values(item as Record<string, { security: unknown }>)) {
        expect(op.security).toEqual([{ ApiKeyAuth: [] }]);
      }
    }
  });

  test("books and the current user need a bearer token; Swagger UI can log in", () => {
    expect(doc.components.securitySchemes.OAuth2Password).toMatchObject({
      type: "oauth2",
      flows: { password: { tokenUrl: "/auth/token" } },
    });
    expect(doc.components.securitySchemes.BearerToken).toMatchObject({
      type: "http",
      scheme: "bearer",
    });
    const bearer = [{ OAuth2Password: [] }, { BearerToken: [] }];
    for (const [path, item] of Object.entries(doc.paths)) {
      if (!path.startsWith("/books") && path !== "/auth/me") continue;
      for (const op of Object.values(item as Record<string, { security: unknown }>)) {
        expect(op.security).toEqual(bearer);
      }
    }
    expect(doc.paths["/auth/token"].post.security).toBeUndefined();
    expect(Object.keys(doc.paths["/auth/token"].post.requestBody.content)).toContain(
      "application/x-www-form-urlencoded",
    );
  });

  test.each([
    ["/books", "post", ["201", "400", "401", "413", "415", "422", "503"]],
    ["/books", "get", ["200", "401", "422", "503"]],
    ["/books/{id}", "get", ["200", "401", "404", "503"]],
    ["/books/{id}", "put", ["200", "400", "401", "404", "413", "415", "422", "503"]],
    ["/books/{id}", "patch", ["200", "400", "401", "404", "413", "415", "422", "503"]],
    ["/books/{id}", "delete", ["204", "401", "404", "503"]],
    ["/auth/register", "post", ["201", "400", "409", "413", "415", "422", "429", "503"]],
    ["/auth/token", "post", ["200", "400", "401", "413", "415", "429", "503"]],
    ["/auth/me", "get", ["200", "401", "503"]],
    ["/auth/me", "delete", ["204", "401", "503"]],
    ["/pets", "post", ["201", "400", "401", "413", "415", "422", "503"]],
    ["/pets", "get", ["200", "401", "422", "503"]],
    ["/pets", "delete", ["200", "400", "401", "413", "415", "422", "503"]],
    ["/pets/{id}/photo", "post", ["201", "400", "401", "404", "413", "415", "422", "503", "507"]],
    ["/readyz", "get", ["200", "422", "503"]],
  ])("%s %s documents responses %j", (path, method, statuses) => {
    const op = doc.paths[path]?.[method];
    expect(op).toBeDefined();
    expect(Object.keys(op.responses).sort()).toEqual(statuses.sort());
  });

  test("request bodies list exactly the content types each route accepts", () => {
    const accepted = (path: string, method: string) =>
      Object.keys(doc.paths[path][method].requestBody.content).sort();
    expect(accepted("/pets", "post")).toEqual(["application/json"]);
    expect(accepted("/pets", "delete")).toEqual(["application/json"]);
    expect(accepted("/books", "post")).toEqual(["application/json"]);
    expect(accepted("/books/{id}", "patch")).toEqual(["application/json"]);
    expect(accepted("/auth/token", "post")).toEqual([
      "application/json",
      "application/x-www-form-urlencoded",
    ]);
    expect(accepted("/pets/{id}/photo", "post")).toEqual(["multipart/form-data"]);
    expect(JSON.stringify(doc)).not.toContain("x-petbooks");
  });

  test("the document is the same on every request", async () => {
    const again = await readJson(t.request("/docs/json", { apiKey: null }));
    expect(again).toEqual(doc);
  });

  test("responses are JSON, errors problem+json", () => {
    const responses = doc.paths["/books/{id}"].get.responses;
    expect(Object.keys(responses["200"].content)).toEqual(["application/json"]);
    expect(Object.keys(responses["404"].content)).toEqual(["application/problem+json"]);
  });

  test("the photo upload is documented as multipart with a binary file", () => {
    const content = doc.paths["/pets/{id}/photo"].post.requestBody.content;
    expect(Object.keys(content)).toEqual(["multipart/form-data"]);
    expect(JSON.stringify(content["multipart/form-data"].schema)).toContain('"binary"');
  });

  test("every error response is a problem document, but the token endpoint's OAuth2 400", () => {
    const other = errorResponses(doc)
      .filter((r) => r.types.join() !== "application/problem+json")
      .map((r) => [r.method, r.path, r.status, r.types]);
    expect(other).toEqual([["post", "/auth/token", 400, ["application/json"]]]);
  });

  test("every problem response has one example of its own status, code and route", () => {
    const responses = errorResponses(doc).filter((r) =>
      r.types.includes("application/problem+json"),
    );
    expect(responses.length).toBeGreaterThan(40);
    for (const { path, method, status, examples } of responses) {
      const where = `${method} ${path} ${status}`;
      expect([where, examples.length]).toEqual([where, 1]);
      expect([where, structuredClone(examples[0])]).toMatchObject([
        where,
        { type: "about:blank", status, code: CODE_BY_STATUS[status] },
      ]);
    }
    // A text belongs to one status: no two responses of different statuses share an example.
    const statusOf = new Map<string, number>();
    for (const { path, method, status, examples } of responses) {
      const content = JSON.stringify({ ...problemContent(examples[0]), status: undefined });
      const seen = statusOf.get(content) ?? status;
      expect([`${method} ${path}`, content, seen]).toEqual([`${method} ${path}`, content, status]);
      statusOf.set(content, status);
    }
  });

  test.each([
    ["/books/{id}", "get", 404, { detail: "Book with the matching ID was not found." }],
    ["/pets/{id}/photo", "post", 404, { detail: "Pet with the matching ID was not found." }],
    ["/pets", "post", 401, { detail: "A valid API key is required in the X-API-KEY header." }],
    ["/books", "get", 401, { detail: expect.stringContaining("bearer token") }],
    ["/auth/token", "post", 401, { detail: "Wrong username or password." }],
    ["/pets", "post", 413, { detail: "The request body is larger than 1048576 bytes." }],
    ["/pets", "post", 415, { detail: "Send the body as application/json." }],
    ["/pets", "post", 400, { detail: "The request body is not valid JSON." }],
    ["/pets/{id}/photo", "post", 400, { detail: "The multipart body could not be parsed." }],
    [
      "/pets",
      "post",
      422,
      { detail: "Invalid body.", errors: [{ path: "/name", message: expect.any(String) }] },
    ],
    [
      "/books",
      "get",
      422,
      { detail: "Invalid query.", errors: [{ path: "/limit", message: expect.any(String) }] },
    ],
  ] as const)("%s %s %i shows what that route answers", (path, method, status, expected) => {
    const example =
      doc.paths[path][method].responses[status].content["application/problem+json"].schema
        .examples[0];
    // A copy: Bun's toMatchObject writes its asymmetric matchers into the object it is given.
    expect(structuredClone(example)).toMatchObject(expected);
  });

  test("401s document the challenge they send: Bearer, or the API key's", () => {
    for (const [path, method] of [
      ["/books", "get"],
      ["/auth/me", "get"],
      ["/auth/token", "post"],
    ] as const) {
      expect(doc.paths[path][method].responses["401"].headers).toEqual({
        "WWW-Authenticate": { schema: { type: "string" }, example: 'Bearer realm="petbooks"' },
      });
    }
    for (const [path, method] of [
      ["/pets", "get"],
      ["/pets", "post"],
      ["/pets/{id}/photo", "post"],
    ] as const) {
      expect(doc.paths[path][method].responses["401"].headers).toEqual({
        "WWW-Authenticate": { schema: { type: "string" }, example: API_KEY_CHALLENGE },
      });
    }
  });

  test("503s say when to retry; the photo upload documents a full disk", () => {
    const upload = doc.paths["/pets/{id}/photo"].post.responses;
    expect(upload["503"].headers).toEqual({
      "Retry-After": { schema: { type: "string" }, example: "5" },
    });
    expect(doc.paths["/readyz"].get.responses["503"].headers).toEqual(upload["503"].headers);
    const full = upload["507"].content["application/problem+json"].schema.examples[0];
    expect(full).toMatchObject({
      status: 507,
      title: "Insufficient Storage",
      code: "insufficient_storage",
    });
  });

  test("every example is valid against its schema", () => {
    expect(invalidExamples(doc)).toEqual([]);
  });

  test("limit and offset are plain integers with their bounds and defaults", () => {
    for (const path of ["/pets", "/books"]) {
      const schemaOf = (name: string) =>
        doc.paths[path].get.parameters.find((p: { name: string }) => p.name === name).schema;
      expect(schemaOf("limit")).toEqual({
        type: "integer",
        minimum: 1,
        maximum: LIST_LIMIT_MAX,
        default: LIST_LIMIT_DEFAULT,
      });
      expect(schemaOf("offset")).toEqual({
        type: "integer",
        minimum: 0,
        maximum: OFFSET_MAX,
        default: 0,
      });
    }
  });

  test("schemas use only JSON Schema and OpenAPI keywords: no `error`, no string-or-number", () => {
    expect(keywordUses(doc, "error")).toEqual([]);
    expect(nonStandardKeywords(doc)).toEqual([]);
    expect(keywordUses(doc, "format").filter((use) => /"(integer|numeric)"/.test(use))).toEqual([]);
    // Elysia's t.File documents a default "File"; t.UnionEnum its first member, in responses too.
    expect(keywordUses(doc, "default").filter((use) => use.endsWith('"File"'))).toEqual([]);
    expect(JSON.stringify(doc.paths["/pets"].get.responses["200"])).not.toContain('"default"');
    const token = doc.paths["/auth/token"].post.responses["200"].content["application/json"];
    expect(structuredClone(token.schema.properties.expires_in)).toEqual({
      type: "integer",
      description: expect.any(String),
    });
  });

  test("responses carry only OpenAPI's response fields", () => {
    for (const item of Object.values<Record<string, { responses: object }>>(doc.paths)) {
      for (const op of Object.values(item)) {
        for (const response of Object.values(op.responses)) {
          for (const key of Object.keys(response)) {
            expect(["description", "headers", "content", "links"]).toContain(key);
          }
        }
      }
    }
  });

  test("hides the docs' own routes", () => {
    expect(Object.keys(doc.paths).filter((p) => p.startsWith("/docs"))).toEqual([]);
  });
});

describe("Swagger UI", () => {
  test("the page loads its assets from this server, not a CDN", async () => {
    const html = await (await t.request("/docs", { apiKey: null })).text();
    expect(html).not.toMatch(/https?:\/\//);
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
    expect(assets.sort()).toEqual([
      "/docs/assets/swagger-init.js",
      "/docs/assets/swagger-ui-bundle.js",
      "/docs/assets/swagger-ui.css",
    ]);
    for (const asset of assets) {
      const res = await t.request(asset, { apiKey: null });
      expect(res.status).toBe(200);
      expect((await res.text()).length).toBeGreaterThan(asset.endsWith("init.js") ? 50 : 10_000);
    }
  });

  test("the page has a policy of its own: scripts and styles from here only, nothing inline", async () => {
    const res = await t.request("/docs", { apiKey: null });
    expect(res.headers.get("content-security-policy")).toBe(DOCS_CSP);
    expect(DOCS_CSP).not.toContain("unsafe");
    expect(await res.text()).not.toMatch(/<script>|<style>| style="/);
    // Everything else keeps the strict one.
    const json = await t.request("/docs/json", { apiKey: null });
    expect(json.headers.get("content-security-policy")).toBe(
      SECURITY_HEADERS["content-security-policy"] as string,
    );
  });

  test("an unknown asset is 404", async () => {
    expect((await t.request("/docs/assets/nope.js", { apiKey: null })).status).toBe(404);
  });
});
