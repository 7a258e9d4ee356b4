import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createTestApp, readJson, type TestApp } from "../testing/app.ts";

let t: TestApp;
// biome-ignore lint/suspicious/noExplicitAny: an OpenAPI document is walked dynamically here
let doc: any;

beforeAll(async () => {
  t = await createTestApp();
  doc = await readJson(t.request("/docs/json", { apiKey: null }));
});
afterAll(() => t.close());

describe("OpenAPI document", () => {
  test("passes an independent OpenAPI validator", async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

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

  test.each([
    ["/pets", "post", ["201", "400", "401", "413", "415", "422"]],
    ["/pets", "get", ["200", "401", "422"]],
    ["/pets", "delete", ["200", "400", "401", "413", "415", "422"]],
    ["/pets/{id}/photo", "post", ["201", "400", "401", "404", "413", "415", "422"]],
    ["/readyz", "get", ["200", "503"]],
  ])("%s %s documents responses %j", (path, method, statuses) => {
    const op = doc.paths[path]?.[method];
    expect(op).toBeDefined();
    expect(Object.keys(op.responses).sort()).toEqual(statuses.sort());
  });

  test("the photo upload is documented as multipart with a binary file", () => {
    const content = doc.paths["/pets/{id}/photo"].post.requestBody.content;
    expect(Object.keys(content)).toContain("multipart/form-data");
    expect(JSON.stringify(content["multipart/form-data"].schema)).toContain('"binary"');
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
      "/docs/assets/swagger-ui-bundle.js",
      "/docs/assets/swagger-ui.css",
    ]);
    for (const asset of assets) {
      const res = await t.request(asset, { apiKey: null });
      expect(res.status).toBe(200);
      expect((await res.text()).length).toBeGreaterThan(10_000);
    }
  });

  test("an unknown asset is 404", async () => {
    expect((await t.request("/docs/assets/nope.js", { apiKey: null })).status).toBe(404);
  });
});
