import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unitOfWork } from "../db/unit-of-work.ts";
import { AppError, NotFoundError } from "../errors.ts";
import { createLogger } from "../logger.ts";
import { createLocalPhotoStorage, type PhotoStorage } from "../storage/photo-storage.ts";
import { StorageUnwritableError } from "../storage/storage-errors.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { newPet, pngBytes } from "../testing/factories.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import type { ExportedPet } from "./pets.model.ts";
import { createPetsRepository, type PetsRepository } from "./pets.repository.ts";
import { createPetsService } from "./pets.service.ts";

let database: TestDatabase;
let dir: string;
let storage: PhotoStorage;
let repository: PetsRepository;
const logLines: string[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  dir = mkdtempSync(join(tmpdir(), "petbooks-service-"));
  storage = createLocalPhotoStorage(dir, "http://x");
  repository = createPetsRepository(database.db);
}, SETUP_TIMEOUT_MS);
afterAll(async () => {
  await database?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, SETUP_TIMEOUT_MS);

const service = (overrides: Partial<PetsRepository> = {}, store: PhotoStorage = storage) =>
  createPetsService({
    data: unitOfWork(database.db, (db) => ({
      pets: { ...createPetsRepository(db), ...overrides },
    })),
    storage: store,
    maxPhotoBytes: 1024,
    logger: createLogger("debug", (l) => logLines.push(l)),
  });

const files = () => readdirSync(dir).filter((f) => !f.startsWith("."));

describe("pets service", () => {
  test("names are checked as PostgreSQL stores them, also for callers that skip HTTP", async () => {
    const [id] = await service().createMany([newPet({ name: ` ${"🐈".repeat(100)} ` })]);
    expect(id).toBeDefined();
    const refused: [name: string, message: string][] = [
      [`${"🐈".repeat(100)}a`, "name must be 1 to 100 characters long"],
      ["   ", "name must be 1 to 100 characters long"],
      ["a\u0000b", "name must not contain the NUL character (U+0000)"],
      ["a\ud800", "name must be valid Unicode (it has an unpaired surrogate)"],
    ];
    for (const [name, message] of refused) {
      const err = await service()
        .create(newPet({ name }))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).fieldErrors).toEqual([{ path: "/name", message }]);
    }
  });

  test("a photo whose row cannot be written leaves no file behind", async () => {
    const pet = await service().create(newPet());
    const failing = service({
      insertPhoto: async () => {
        throw new Error("connection reset");
      },
    });
    await expect(failing.addPhoto(pet.id, new Blob([pngBytes()]))).rejects.toThrow(
      "connection reset",
    );
    expect(files()).toEqual([]);
  });

  test("a save given up on while its object may still land notes the file for removal", async () => {
    const pet = await service().create(newPet());
    const withPhotos = await repository.count(true);
    const noted: string[][] = [];
    const storageGivingUp = (mayHaveLanded: boolean): PhotoStorage => ({
      ...storage,
      save: async () => {
        throw new StorageUnwritableError("S3 Timeout: S3 PUT took longer than 60000 ms", {
          mayHaveLanded,
        });
      },
    });
    for (const mayHaveLanded of [true, false]) {
      const giving = createPetsService({
        data: unitOfWork(database.db, (db) => ({ pets: createPetsRepository(db) })),
        storage: storageGivingUp(mayHaveLanded),
        maxPhotoBytes: 1024,
        logger: createLogger("debug", (l) => logLines.push(l)),
        deferredRemovals: { deferRemovals: async (names) => void noted.push(names) },
      });
      const err = await giving.addPhoto(pet.id, new Blob([pngBytes()])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageUnwritableError);
    }
    // Only the one that may have landed, under the name it was saved as.
    expect(noted).toHaveLength(1);
    expect(noted[0]?.[0]).toMatch(/^[A-Za-z0-9_-]{22}\.png$/);
    expect(await repository.count(true)).toBe(withPhotos);
  });

  test("a pet deleted between the check and the insert is 404, with no file left", async () => {
    const pet = await service().create(newPet());
    const racing = service({
      insertPhoto: async (photo) => {
        await repository.deleteMany([pet.id]);
        return repository.insertPhoto(photo);
      },
    });
    await expect(racing.addPhoto(pet.id, new Blob([pngBytes()]))).rejects.toBeInstanceOf(
      NotFoundError,
    );
    expect(files()).toEqual([]);
  });

  test("photo files are removed only after the delete committed", async () => {
    const s = service();
    const pet = await s.create(newPet());
    await s.addPhoto(pet.id, new Blob([pngBytes()]));
    expect(files()).toHaveLength(1);
    const rolledBack = service({
      deleteMany: async () => {
        throw new Error("serialization failure");
      },
    });
    await expect(rolledBack.deleteMany([pet.id])).rejects.toThrow("serialization failure");
    expect(files()).toHaveLength(1);
    expect(await s.deleteMany([pet.id])).toEqual({ deleted: 1, errors: [] });
    expect(files()).toEqual([]);
  });

  test("a file that cannot be removed is logged, and the delete still succeeds", async () => {
    const s = service();
    const pet = await s.create(newPet());
    await s.addPhoto(pet.id, new Blob([pngBytes()]));
    const stuck: PhotoStorage = {
      ...storage,
      remove: async () => {
        throw new Error("EACCES");
      },
    };
    logLines.length = 0;
    expect(await service({}, stuck).deleteMany([pet.id])).toEqual({ deleted: 1, errors: [] });
    expect(logLines.join("")).toContain("could not remove photo file");
    for (const f of files()) await storage.remove(f);
  });

  test.each([
    ["too large", new Uint8Array(1025).fill(0xff), "payload_too_large"],
    ["not an image", new TextEncoder().encode("hello"), "unsupported_media_type"],
    ["empty", new Uint8Array(), "validation"],
  ])("an upload that is %s fails with %s before anything is stored", async (_, bytes, code) => {
    const pet = await service().create(newPet());
    const err = await service()
      .addPhoto(pet.id, new Blob([bytes]))
      .catch((e) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe(code as never);
    expect(files()).toEqual([]);
  });

  const jsonText = (json: string | Uint8Array) =>
    typeof json === "string" ? json : new TextDecoder().decode(json);

  test("the export's JSON covers every pet once and maps photos to URLs", async () => {
    const s = service();
    const created = [];
    for (let i = 0; i < 5; i++) created.push(await s.create(newPet()));
    const first = created[0];
    if (!first) throw new Error("no pet");
    const photo = await s.addPhoto(first.id, new Blob([pngBytes()]));
    const exported = async (hasPhotos: boolean | undefined, chunk?: number) => {
      const chunks = [];
      for await (const part of s.exportJson(hasPhotos, chunk)) chunks.push(part);
      return {
        counts: chunks.map((c) => c.count),
        pets: chunks.flatMap((c) => JSON.parse(`[${jsonText(c.json)}]`) as ExportedPet[]),
      };
    };
    const all = await exported(undefined, 2);
    expect(all.counts.every((n) => n > 0 && n <= 2)).toBe(true);
    expect(all.counts.reduce((a, b) => a + b)).toBe(all.pets.length);
    const ids = new Set(all.pets.map((p) => p.id));
    expect(ids.size).toBe(all.pets.length);
    expect(created.every((p) => ids.has(p.id))).toBe(true);
    expect(all.pets.find((p) => p.id === first.id)?.photos).toEqual([photo.url]);
    const withPhotos = await exported(true);
    expect(withPhotos.pets.map((p) => p.id)).toEqual([first.id]);
    // A name that reads like the photos in JSON does not fool the mapping to URLs.
    const tricky = await s.create({ ...newPet(), name: '"photos":["x.png"],"created_at":"' });
    const trickyPhoto = await s.addPhoto(tricky.id, new Blob([pngBytes()]));
    const again = (await exported(true)).pets.find((p) => p.id === tricky.id);
    expect(again).toMatchObject({ name: tricky.name, photos: [trickyPhoto.url] });
  });
});
