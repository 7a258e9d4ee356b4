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
    ["/books", "post", ["201", "400", "401", "413", "415", "422"]],
    ["/books", "get", ["200", "401", "422"]],
    ["/books/{id}", "get", ["200", "401", "404"]],
    ["/books/{id}", "put", ["200", "400", "401", "404", "413", "415", "422"]],
    ["/books/{id}", "patch", ["200", "400", "401", "404", "413", "415", "422"]],
    ["/books/{id}", "delete", ["204", "401", "404"]],
    ["/auth/register", "post", ["201", "400", "409", "413", "415", "422"]],
    ["/auth/token", "post", ["200", "400", "401", "413", "415", "422"]],
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
