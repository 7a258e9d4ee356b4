import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import {
  createTestApp,
  jsonRequest,
  PUBLIC_URL,
  photoForm,
  readJson,
  TEST_API_KEY,
  type TestApp,
} from "../testing/app.ts";
import { IMAGE_HEADS, newPet, pngBytes } from "../testing/factories.ts";
import { caseInit, type HttpCase, jsonOfSize, MiB } from "../testing/http-cases.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { CASES_MAX_PHOTO_BYTES, PETS_CASES } from "./pets.cases.ts";
import { PET_NOT_FOUND, type Pet } from "./pets.model.ts";
import {
  DeletePetsSchema,
  ListPetsQuerySchema,
  listPetsParameters,
  NewPetSchema,
  PhotoUploadSchema,
} from "./pets.schemas.ts";

const MAX_PHOTO_BYTES = CASES_MAX_PHOTO_BYTES;
let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({ maxPhotoBytes: MAX_PHOTO_BYTES });
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.close(), SETUP_TIMEOUT_MS);
beforeEach(async () => {
  await t.database.db.execute(sql`delete from pets`);
  rmSync(join(t.dataDir, "photos"), { recursive: true, force: true });
  mkdirSync(join(t.dataDir, "photos"));
}, SETUP_TIMEOUT_MS);

async function createPet(overrides: Partial<Pet> = {}): Promise<Pet> {
  const res = await t.request("/pets", jsonRequest("POST", newPet(overrides as never)));
  expect(res.status).toBe(201);
  return readJson(res);
}

async function uploadPhoto(petId: string, bytes: Uint8Array = pngBytes()) {
  return t.request(`/pets/${petId}/photo`, photoForm(bytes));
}

const photoFiles = () =>
  existsSync(join(t.dataDir, "photos")) ? readdirSync(join(t.dataDir, "photos")) : [];

/** Every error answers one problem shape, with the status it claims. */
async function expectProblem(res: Response, status: number, code?: string) {
  const text = await res.text();
  if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${text}`);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  const body = JSON.parse(text);
  expect(body).toMatchObject({ type: "about:blank", status });
  expect(typeof body.title).toBe("string");
  expect(typeof body.detail).toBe("string");
  expect(body.request_id).toBe(res.headers.get("x-request-id"));
  if (code) expect(body.code).toBe(code);
  expect(JSON.stringify(body)).not.toMatch(/at .*\.ts:\d+|stack/i);
  return body;
}

describe("API key", () => {
  test.each([
    ["GET", "/pets", undefined],
    ["POST", "/pets", jsonRequest("POST", newPet())],
    ["DELETE", "/pets", jsonRequest("DELETE", { ids: ["x"] })],
    ["POST", "/pets/0193a8f2-6d1e-7c3a-9b1e-5f2d8c4a7e10/photo", photoForm(pngBytes())],
  ])("%s %s without a key is 401", async (method, path, init) => {
    for (const apiKey of [null, "", "wrong-key-0123456789", `${TEST_API_KEY}x`]) {
      const res = await t.request(path, { method, ...init, apiKey });
      await expectProblem(res, 401, "unauthorized");
    }
  });

  test("401 comes before body validation and parsing", async () => {
    const res = await t.request("/pets", { ...jsonRequest("POST", "{not json"), apiKey: null });
    await expectProblem(res, 401);
  });

  test("the key never reaches the logs", async () => {
    await (await t.request("/pets", { apiKey: TEST_API_KEY })).text();
    await (await t.request("/pets", { apiKey: "wrong-key-but-secret-0123" })).text();
    await Bun.sleep(5); // the access log line is written after the response
    const logs = t.logLines.join("");
    expect(logs).toContain('"path":"/pets"');
    expect(logs).not.toContain(TEST_API_KEY);
    expect(logs).not.toContain("wrong-key-but-secret-0123");
  });

  test("health, docs and photos need no key", async () => {
    for (const path of ["/healthz", "/readyz", "/docs", "/docs/json"]) {
      expect((await t.request(path, { apiKey: null })).status).toBe(200);
    }
  });
});

describe("POST /pets", () => {
  test("creates a pet in the seed contract's shape", async () => {
    const res = await t.request(
      "/pets",
      jsonRequest("POST", { name: "  boy  ", age: 7, type: "dog" }),
    );
    expect(res.status).toBe(201);
    const pet = await readJson(res);
    expect(Object.keys(pet)).toEqual(["id", "name", "age", "type", "photos", "created_at"]);
    expect(pet).toMatchObject({ name: "boy", age: 7, type: "dog", photos: [] });
    expect(pet.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(pet.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/);
  });

  test("a body over the JSON limit is 413 before it is read", async () => {
    const res = await t.request("/pets", {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(2 * 1024 * 1024) },
      body: "{}",
    });
    await expectProblem(res, 413, "payload_too_large");
  });

  test("a missing type is 422, not a dog", async () => {
    const problem = await expectProblem(
      await t.request("/pets", jsonRequest("POST", { name: "x", age: 1 })),
      422,
      "validation",
    );
    expect(problem.errors).toEqual([{ path: "/type", message: "type must be dog or cat" }]);
  });

  test("__proto__ is an unknown field, not a prototype", async () => {
    const body = '{"name":"x","age":1,"type":"dog","__proto__":{"admin":true}}';
    const problem = await expectProblem(
      await t.request("/pets", jsonRequest("POST", body)),
      422,
      "validation",
    );
    expect(problem.errors).toEqual([
      { path: "/__proto__", message: "Property '__proto__' should not be provided" },
    ]);
    expect((await readJson(t.request("/pets"))).count).toBe(0);
  });

  test("a NUL in the name is 422 saying so", async () => {
    const problem = await expectProblem(
      await t.request("/pets", jsonRequest("POST", { name: "a\u0000b", age: 1, type: "dog" })),
      422,
      "validation",
    );
    expect(problem.errors).toEqual([
      { path: "/name", message: "name must not contain the NUL character (U+0000)" },
    ]);
  });

  test("lengths count characters: 100 emoji are stored and read back whole", async () => {
    const name = "🐈".repeat(100);
    const pet = await createPet({ name });
    expect(pet.name).toBe(name);
    const problem = await expectProblem(
      await t.request("/pets", jsonRequest("POST", { name: `${name}a`, age: 1, type: "dog" })),
      422,
    );
    expect(problem.errors).toEqual([
      { path: "/name", message: "name must be 1 to 100 characters long" },
    ]);
  });

  test("a chunked body stops being read at the limit", async () => {
    const data = jsonOfSize(11.5 * MiB, { age: 1, type: "dog" }, "name");
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= data.length) return controller.close();
        controller.enqueue(data.subarray(pulled, pulled + 64 * 1024));
        pulled += 64 * 1024;
      },
    });
    const res = await t.request("/pets", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    await expectProblem(res, 413, "payload_too_large");
    // Read up to the limit and a little read-ahead, never the whole 11.5 MiB.
    expect(pulled).toBeLessThan(2 * MiB);
  });

  test("401 comes before 413 and 415", async () => {
    for (const headers of [
      { "content-type": "application/json", "content-length": "20000000" },
      { "content-type": "text/plain" },
    ] as Record<string, string>[]) {
      const res = await t.request("/pets", { method: "POST", headers, body: "{}", apiKey: null });
      await expectProblem(res, 401, "unauthorized");
    }
  });
});

describe("request schemas", () => {
  /** Paths of every `default` in a schema: Elysia fills them in before validating. */
  function defaultsIn(schema: unknown, path = ""): string[] {
    if (!schema || typeof schema !== "object") return [];
    const found = "default" in schema ? [path || "/"] : [];
    for (const [key, value] of Object.entries(schema)) {
      found.push(...defaultsIn(value, `${path}/${key}`));
    }
    return found;
  }

  test.each([
    ["POST /pets", NewPetSchema],
    ["DELETE /pets", DeletePetsSchema],
    ["POST /pets/{id}/photo", PhotoUploadSchema],
  ])("the %s body has no defaults to fill in", (_, schema) => {
    expect(defaultsIn(schema)).toEqual([]);
  });

  test("the GET /pets query the docs show is the one the route reads", () => {
    expect(Object.keys(ListPetsQuerySchema.properties)).toEqual(Object.keys(listPetsParameters));
  });
});

/** The same cases the contract suite sends to the compiled binary (see pets.cases.ts). */
describe.each(Object.entries(PETS_CASES))("%s cases", (_, cases) => {
  test.each(cases.map((c): [string, HttpCase] => [c.name, c]))("%s", async (_, c) => {
    const pet = c.request.path.includes("{pet}") ? await createPet() : undefined;
    const { path, init } = caseInit(c.request, { pet: pet?.id });
    const res = await t.request(path, {
      ...init,
      apiKey: c.request.anonymous ? null : TEST_API_KEY,
    });
    if (c.expectedStatus < 400) {
      if (res.status !== c.expectedStatus) throw new Error(`${res.status}: ${await res.text()}`);
      return;
    }
    const problem = await expectProblem(res, c.expectedStatus);
    if (c.errorPath) {
      expect(problem.errors.map((e: { path: string }) => e.path)).toContain(c.errorPath);
    }
    if (c.allow) expect(res.headers.get("allow")).toBe(c.allow);
  });
});

describe("GET /pets", () => {
  test("empty registry", async () => {
    const res = await t.request("/pets");
    expect(res.status).toBe(200);
    expect(await readJson(res)).toEqual({ count: 0, items: [] });
  });

  test("newest first, default limit 20, exact count across pages", async () => {
    const created: string[] = [];
    for (let i = 0; i < 23; i++) created.push((await createPet()).id);
    const body = await readJson(t.request("/pets"));
    expect(body.count).toBe(23);
    expect(body.items).toHaveLength(20);
    expect(body.items.map((p: Pet) => p.id)).toEqual(created.slice().reverse().slice(0, 20));
    const rest = await readJson(t.request("/pets?limit=20&offset=20"));
    expect(rest.items.map((p: Pet) => p.id)).toEqual(created.slice(0, 3).reverse());
    expect(rest.count).toBe(23);
  });

  test("has_photos filters items and count", async () => {
    const withPhoto = await createPet();
    const without = await createPet();
    expect((await uploadPhoto(withPhoto.id)).status).toBe(201);
    const yes = await readJson(t.request("/pets?has_photos=true"));
    expect(yes.count).toBe(1);
    expect(yes.items.map((p: Pet) => p.id)).toEqual([withPhoto.id]);
    expect(yes.items[0].photos).toHaveLength(1);
    expect(Object.keys(yes.items[0].photos[0])).toEqual(["id", "url"]);
    const no = await readJson(t.request("/pets?has_photos=false"));
    expect(no).toMatchObject({ count: 1, items: [{ id: without.id, photos: [] }] });
    const all = await readJson(t.request("/pets"));
    expect(all.count).toBe(2);
  });
});

describe("POST /pets/{id}/photo", () => {
  test("stores the photo and its URL serves the exact bytes", async () => {
    const pet = await createPet();
    const bytes = pngBytes([1, 2, 3]);
    const res = await uploadPhoto(pet.id, bytes);
    expect(res.status).toBe(201);
    const photo = await readJson(res);
    expect(Object.keys(photo)).toEqual(["id", "url"]);
    expect(photo.url).toStartWith(`${PUBLIC_URL}/photos/`);
    expect(photo.url).toEndWith(".png");
    const served = await t.request(new URL(photo.url).pathname, { apiKey: null });
    expect(served.status).toBe(200);
    expect(served.headers.get("content-type")).toBe("image/png");
    expect(served.headers.get("cache-control")).toContain("max-age=31536000");
    expect(Buffer.from(await served.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);
    const listed = await readJson(t.request("/pets"));
    expect(listed.items[0].photos).toEqual([photo]);
  });

  test.each([
    ["jpg", IMAGE_HEADS.jpeg, "image/jpeg"],
    ["gif", IMAGE_HEADS.gif, "image/gif"],
    ["webp", IMAGE_HEADS.webp, "image/webp"],
  ])("accepts %s by its bytes, whatever the file is called", async (ext, bytes, type) => {
    const pet = await createPet();
    const res = await t.request(`/pets/${pet.id}/photo`, photoForm(bytes, "file", "x.txt"));
    expect(res.status).toBe(201);
    const { url } = await readJson(res);
    expect(url).toEndWith(`.${ext}`);
    const served = await t.request(new URL(url).pathname, { apiKey: null });
    expect(served.headers.get("content-type")).toBe(type);
  });

  test.each([
    ["a text file named .png", new TextEncoder().encode("not an image"), 415],
    ["an empty file", new Uint8Array(), 422],
    ["a file over MAX_PHOTO_BYTES", new Uint8Array(MAX_PHOTO_BYTES + 1).fill(0xff), 413],
  ])("rejects %s with %d and keeps no file", async (_, bytes, status) => {
    const pet = await createPet();
    const res = await t.request(`/pets/${pet.id}/photo`, photoForm(bytes, "file", "cat.png"));
    await expectProblem(res, status);
    expect(photoFiles()).toEqual([]);
  });

  test.each([
    ["unknown id", "0193a8f2-6d1e-7c3a-9b1e-5f2d8c4a7e10"],
    ["malformed id", "not-a-uuid"],
    ["SQL in the id", "1'; drop table pets; --"],
  ])("%s is 404 and stores nothing", async (_, id) => {
    const res = await uploadPhoto(encodeURIComponent(id));
    const problem = await expectProblem(res, 404, "not_found");
    expect(problem.detail).toBe(PET_NOT_FOUND);
    expect(photoFiles()).toEqual([]);
  });

  test("photo URLs reject path tricks", async () => {
    for (const path of [
      "/photos/..%2F..%2Fetc%2Fpasswd",
      "/photos/../../etc/passwd",
      "/photos/.%2e/secret.png",
      "/photos/AAAAAAAAAAAAAAAAAAAAAA.exe",
      "/photos/AAAAAAAAAAAAAAAAAAAAAA.png",
    ]) {
      const res = await t.request(path, { apiKey: null });
      expect(res.status).toBe(404);
    }
  });
});

describe("DELETE /pets", () => {
  test("deletes pets with their photo rows and files, reporting the rest", async () => {
    const a = await createPet();
    const b = await createPet();
    const keep = await createPet();
    await uploadPhoto(a.id);
    await uploadPhoto(a.id);
    const kept = await readJson(uploadPhoto(keep.id));
    expect(photoFiles()).toHaveLength(3);
    const missing = "587e5358-6407-4fff-9f86-853ce1849ac7";
    const res = await t.request("/pets", jsonRequest("DELETE", { ids: [a.id, missing, b.id] }));
    expect(res.status).toBe(200);
    expect(await readJson(res)).toEqual({
      deleted: 2,
      errors: [{ id: missing, error: "Pet with the matching ID was not found." }],
    });
    expect(photoFiles()).toEqual([new URL(kept.url).pathname.split("/").pop() as string]);
    const left = await readJson(t.request("/pets"));
    expect(left).toMatchObject({ count: 1, items: [{ id: keep.id }] });
    const rows = await t.database.db.execute(sql`select count(*)::int as n from pet_photos`);
    expect(JSON.stringify(rows)).toContain('"n":1');
  });

  test("a repeated id counts once; malformed ids get an error entry", async () => {
    const a = await createPet();
    const res = await t.request(
      "/pets",
      jsonRequest("DELETE", { ids: [a.id, a.id, a.id.toUpperCase(), "nope", "nope", ""] }),
    );
    expect(res.status).toBe(200);
    expect(await readJson(res)).toEqual({
      deleted: 1,
      errors: [
        { id: "nope", error: PET_NOT_FOUND },
        { id: "", error: PET_NOT_FOUND },
      ],
    });
  });

  test("deleting twice reports the second time", async () => {
    const a = await createPet();
    await t.request("/pets", jsonRequest("DELETE", { ids: [a.id] }));
    const again = await readJson(t.request("/pets", jsonRequest("DELETE", { ids: [a.id] })));
    expect(again).toEqual({ deleted: 0, errors: [{ id: a.id, error: PET_NOT_FOUND }] });
  });

  test("accepts 1000 ids", async () => {
    const ids = Array.from({ length: 1000 }, () => Bun.randomUUIDv7());
    const body = await readJson(t.request("/pets", jsonRequest("DELETE", { ids })));
    expect(body.deleted).toBe(0);
    expect(body.errors).toHaveLength(1000);
  });
});

describe("cross-cutting", () => {
  test("echoes a sane X-Request-Id and makes one otherwise", async () => {
    const echoed = await t.request("/pets", { headers: { "x-request-id": "abc-123" } });
    expect(echoed.headers.get("x-request-id")).toBe("abc-123");
    const made = await t.request("/pets", { headers: { "x-request-id": "bad id\u0001" } });
    expect(made.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("logs one structured line per request", async () => {
    t.logLines.length = 0;
    const res = await t.request("/pets?limit=1", { headers: { "x-request-id": "log-me" } });
    await res.text();
    await Bun.sleep(5);
    const entry = t.logLines.map((l) => JSON.parse(l)).find((l) => l.request_id === "log-me");
    expect(entry).toMatchObject({ level: "info", method: "GET", path: "/pets", status: 200 });
    expect(typeof entry.duration_ms).toBe("number");
  });

  test("unknown routes are a 404 problem", async () => {
    await expectProblem(await t.request("/nope", { apiKey: null }), 404, "not_found");
  });

  test("readyz is 503 when the database is gone", async () => {
    const broken = {
      ...t.services.database,
      ping: async () => {
        throw new Error("down");
      },
    };
    const { healthRoutes } = await import("../http/health.http.ts");
    const { bareApp } = await import("../testing/bare-app.ts");
    const app = bareApp().use(healthRoutes(broken));
    const res = await app.handle(new Request("http://localhost/readyz"));
    await expectProblem(res, 503, "unavailable");
  });
});
