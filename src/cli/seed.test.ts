import { afterAll, beforeAll, expect, test } from "bun:test";
import { detectImageFormat } from "../storage/image-format.ts";
import { createTestApp, jsonRequest, readJson, type TestApp } from "../testing/app.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { DEMO_USER, seed } from "./seed.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.close(), SETUP_TIMEOUT_MS);

const run = (targets: { pets: number; books: number }) => seed(t.services, targets);

test("seeds demo data the API serves, and a second run adds nothing", async () => {
  const first = await run({ pets: 1500, books: 1200 });
  expect(first).toEqual({
    petsAdded: 1500,
    photosAdded: 375,
    booksAdded: 1200,
    demoUserCreated: true,
  });
  expect(await run({ pets: 1500, books: 1200 })).toEqual({
    petsAdded: 0,
    photosAdded: 0,
    booksAdded: 0,
    demoUserCreated: false,
  });
  expect(await run({ pets: 1600, books: 1200 })).toMatchObject({ petsAdded: 100, booksAdded: 0 });

  const pets = await readJson(t.request("/pets?has_photos=true&limit=1"));
  expect(pets.count).toBe(400);
  const photo = await t.request(new URL(pets.items[0].photos[0].url).pathname, { apiKey: null });
  expect(detectImageFormat(new Uint8Array(await photo.arrayBuffer()))?.contentType).toBe(
    "image/png",
  );
  expect((await readJson(t.request("/pets"))).count).toBe(1600);

  const token = await readJson(
    t.request("/auth/token", jsonRequest("POST", { grant_type: "password", ...DEMO_USER })),
  );
  const books = await readJson(
    t.request("/books?limit=3", { headers: { authorization: `Bearer ${token.access_token}` } }),
  );
  expect(books.count).toBe(1200);
  for (const book of books.items) {
    expect(book.title.length).toBeGreaterThan(3);
    expect(book.author).toMatch(/^\S+ .+/);
    expect(book.published_on).toMatch(/^(19[5-9]\d|20[0-2]\d)-\d{2}-\d{2}$/);
  }
  // Every seeded book has its event waiting in the outbox.
  expect(await t.services.relay.drain()).toBe(1200);
}, 60_000);
