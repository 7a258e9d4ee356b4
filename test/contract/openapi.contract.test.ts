/**
 * The OpenAPI document the compiled binary serves: valid, in standard keywords only, and its error
 * examples are what the binary really answers.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import { OPENAPI_PATH } from "../../src/http/docs.ts";
import { LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, OFFSET_MAX } from "../../src/http/pagination.ts";
import { startServer, tempDataDir } from "../../src/testing/binary.ts";
import {
  CODE_BY_STATUS,
  documentedProblem,
  errorResponses,
  invalidExamples,
  keywordUses,
  nonStandardKeywords,
  problemContent,
} from "../../src/testing/openapi-checks.ts";
import {
  CONTRACT_API_KEY,
  CONTRACT_JWT_SECRET,
  expectProblem,
  useContractServer,
} from "./harness.ts";

const server = useContractServer();

// biome-ignore lint/suspicious/noExplicitAny: an OpenAPI document is walked dynamically here
let doc: any;
let bearer: string;
let petId: string;

beforeAll(async () => {
  const res = await server.api(OPENAPI_PATH, { apiKey: null });
  expect(res.status).toBe(200);
  doc = await res.json();
  bearer = await server.bearer();
  const pet = await server.api("/pets", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "contract", age: 3, type: "cat" }),
  });
  expect(pet.status).toBe(201);
  petId = ((await pet.json()) as { id: string }).id;
}, 120_000);

const json = (method: string, body: string, headers: Record<string, string> = {}): RequestInit => ({
  method,
  headers: { "content-type": "application/json", ...headers },
  body,
});

const photoForm = (bytes: Uint8Array) => {
  const form = new FormData();
  form.append("file", new File([bytes], "photo.bin", { type: "application/octet-stream" }));
  return form;
};

describe("the served OpenAPI document", () => {
  // Compiles the whole OpenAPI 3.1 meta-schema: seconds on a busy machine.
  test("passes an independent OpenAPI validator", async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  }, 60_000);

  test("every problem response has one example of its status and code, none shared", () => {
    const problems = errorResponses(doc).filter((r) =>
      r.types.includes("application/problem+json"),
    );
    expect(problems.length).toBeGreaterThan(40);
    const statusOf = new Map<string, number>();
    for (const { path, method, status, examples } of problems) {
      const where = `${method} ${path} ${status}`;
      expect([where, examples.length]).toEqual([where, 1]);
      const { type, code } = examples[0];
      expect([where, type, examples[0].status, code]).toEqual([
        where,
        "about:blank",
        status,
        CODE_BY_STATUS[status],
      ]);
      const content = JSON.stringify({ ...problemContent(examples[0]), status: undefined });
      expect([where, content, statusOf.get(content) ?? status]).toEqual([where, content, status]);
      statusOf.set(content, status);
    }
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

  test("schemas use only JSON Schema and OpenAPI keywords: no `error`", () => {
    expect(keywordUses(doc, "error")).toEqual([]);
    expect(nonStandardKeywords(doc)).toEqual([]);
  });
});

/** A request the binary answers with a problem, and the route whose documented example it is. */
interface Case {
  name: string;
  path: string;
  method: "get" | "post";
  status: number;
  send: () => Promise<Response>;
}

const cases: Case[] = [
  {
    name: "a book that does not exist",
    path: "/books/{id}",
    method: "get",
    status: 404,
    send: () =>
      server.api(`/books/${crypto.randomUUID()}`, {
        apiKey: null,
        headers: { authorization: `Bearer ${bearer}` },
      }),
  },
  {
    name: "books without a token",
    path: "/books",
    method: "get",
    status: 401,
    send: () => server.api("/books", { apiKey: null }),
  },
  {
    name: "pets without the API key",
    path: "/pets",
    method: "get",
    status: 401,
    send: () => server.api("/pets", { apiKey: null }),
  },
  {
    name: "a wrong password",
    path: "/auth/token",
    method: "post",
    status: 401,
    send: () =>
      server.api("/auth/token", {
        method: "POST",
        apiKey: null,
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "password",
          username: "nobody-here",
          password: "not the password",
        }),
      }),
  },
  {
    name: "a token request in plain text",
    path: "/auth/token",
    method: "post",
    status: 415,
    send: () =>
      server.api("/auth/token", {
        method: "POST",
        apiKey: null,
        headers: { "content-type": "text/plain" },
        body: "username=a&password=b",
      }),
  },
  {
    name: "malformed JSON",
    path: "/pets",
    method: "post",
    status: 400,
    send: () => server.api("/pets", json("POST", "{")),
  },
  {
    name: "a body in plain text",
    path: "/pets",
    method: "post",
    status: 415,
    send: () =>
      server.api("/pets", {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: "x",
      }),
  },
  {
    name: "a body over the JSON limit",
    path: "/pets",
    method: "post",
    status: 413,
    send: () => server.api("/pets", json("POST", `"${"x".repeat(1024 * 1024)}"`)),
  },
  {
    name: "a pet without a name",
    path: "/pets",
    method: "post",
    status: 422,
    send: () => server.api("/pets", json("POST", JSON.stringify({ age: 3, type: "cat" }))),
  },
  {
    name: "a limit that is no number",
    path: "/books",
    method: "get",
    status: 422,
    send: () =>
      server.api("/books?limit=abc", {
        apiKey: null,
        headers: { authorization: `Bearer ${bearer}` },
      }),
  },
  {
    name: "a photo of a pet that does not exist",
    path: "/pets/{id}/photo",
    method: "post",
    status: 404,
    send: () =>
      server.api(`/pets/${crypto.randomUUID()}/photo`, {
        method: "POST",
        body: photoForm(new Uint8Array([1, 2, 3])),
      }),
  },
  {
    name: "a photo that is no image",
    path: "/pets/{id}/photo",
    method: "post",
    status: 415,
    send: () =>
      server.api(`/pets/${petId}/photo`, {
        method: "POST",
        body: photoForm(new TextEncoder().encode("not an image")),
      }),
  },
  {
    // The binary runs with the default MAX_PHOTO_BYTES, which the example shows.
    name: "a photo over the default limit",
    path: "/pets/{id}/photo",
    method: "post",
    status: 413,
    send: () =>
      server.api(`/pets/${petId}/photo`, {
        method: "POST",
        body: photoForm(new Uint8Array(10 * 1024 * 1024 + 1)),
      }),
  },
];

describe("the documented examples are what the binary answers", () => {
  test.each(cases)("$method $path $status: $name", async ({ path, method, status, send }) => {
    const { example, headers } = documentedProblem(doc, path, method, status);
    const res = await send();
    const challenge = res.headers.get("www-authenticate");
    const answer = await expectProblem(res, status);
    if (status === 422) {
      // The example names one field; the answer names every field that failed.
      expect(answer.detail).toBe(example.detail);
      expect(answer.errors).toContainEqual(example.errors[0]);
    } else {
      expect(problemContent(answer)).toEqual(problemContent(example));
    }
    expect(challenge ?? undefined).toBe(headers["WWW-Authenticate"]);
  });

  test("a username that is taken", async () => {
    const { example } = documentedProblem(doc, "/auth/register", "post", 409);
    const register = () =>
      server.api(
        "/auth/register",
        json("POST", JSON.stringify({ username: "contract-taken", password: "long enough pw" })),
      );
    expect((await register()).status).toBe(201);
    expect(problemContent(await expectProblem(await register(), 409))).toEqual(
      problemContent(example),
    );
  });
});

describe("limit and offset, documented as integers, are validated as before", () => {
  test.each([
    "limit=0",
    "limit=-1",
    "limit=101",
    "limit=abc",
    "limit=1e308",
    "limit=1.5",
    "limit=2147483648",
    "offset=-1",
    "offset=abc",
    "offset=2147483648",
  ])("GET /pets?%s is 422", async (query) => {
    await expectProblem(await server.api(`/pets?${query}`), 422);
  });

  test("valid values page the list", async () => {
    const page = await server.api("/pets?limit=1&offset=0");
    expect(page.status).toBe(200);
    const body = (await page.json()) as { count: number; items: unknown[] };
    expect(body.count).toBeGreaterThanOrEqual(1);
    expect(body.items).toHaveLength(1);
  });
});

test("the document does not depend on what the server answered before it was first asked", async () => {
  // The contract server was asked for it first thing. This one looks up a book first, which
  // makes the server compile that route, and once changed the schema the document is made from.
  const dataDir = tempDataDir();
  const own = await startServer({
    DATA_DIR: dataDir,
    API_KEY: CONTRACT_API_KEY,
    JWT_SECRET: CONTRACT_JWT_SECRET,
  });
  try {
    const user = { username: "docs_order", password: "correct horse battery staple" };
    const registered = await fetch(`${own.url}/auth/register`, json("POST", JSON.stringify(user)));
    expect(registered.status).toBe(201);
    const token = await fetch(`${own.url}/auth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "password", ...user }),
    });
    const { access_token } = (await token.json()) as { access_token: string };
    const lookup = await fetch(`${own.url}/books/00000000-0000-7000-8000-000000000000`, {
      headers: { authorization: `Bearer ${access_token}` },
    });
    expect(lookup.status).toBe(404);
    const later = await fetch(`${own.url}${OPENAPI_PATH}`);
    expect(await later.json()).toEqual(doc);
  } finally {
    await own.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 120_000);
