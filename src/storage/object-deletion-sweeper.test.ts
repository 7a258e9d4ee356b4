import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { unitOfWork } from "../db/unit-of-work.ts";
import { createManualClock } from "../events/clock.ts";
import { createLogger, silentLogger } from "../logger.ts";
import { createPetsRepository } from "../pets/pets.repository.ts";
import { createPetsService } from "../pets/pets.service.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { newPet, pngBytes } from "../testing/factories.ts";
import { makeTempDir } from "../testing/temp.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { createObjectDeletionSweeper } from "./object-deletion-sweeper.ts";
import { createObjectDeletionsRepository } from "./object-deletions.repository.ts";
import { pendingObjectDeletions } from "./object-deletions.table.ts";
import { createLocalPhotoStorage, type PhotoStorage } from "./photo-storage.ts";

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
}, SETUP_TIMEOUT_MS);
afterAll(() => database?.close(), SETUP_TIMEOUT_MS);

const MINUTE = 60_000;

/** A storage whose removals fail while `down` is set, as a bucket that is briefly away. */
function flakyStorage() {
  const storage = createLocalPhotoStorage(makeTempDir("petbooks-sweep-"), "http://x");
  const state = { down: false, removeCalls: 0 };
  const flaky: PhotoStorage = {
    ...storage,
    async remove(name) {
      state.removeCalls++;
      if (state.down)
        throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ConnectionRefused" });
      return storage.remove(name);
    },
  };
  return { storage: flaky, state };
}

/** Each test starts with no pending deletions (they share one database). */
async function setup() {
  await database.db.delete(pendingObjectDeletions);
  const clock = createManualClock(Date.parse("2026-12-01T10:00:00Z"));
  const { storage, state } = flakyStorage();
  const repository = createObjectDeletionsRepository(database.db);
  const logLines: string[] = [];
  const logger = createLogger("debug", (line) => logLines.push(line));
  const sweeper = createObjectDeletionSweeper({
    repository,
    storage,
    logger,
    clock,
    intervalMs: MINUTE,
    baseDelayMs: MINUTE,
    maxDelayMs: 4 * MINUTE,
  });
  const pets = createPetsService({
    data: unitOfWork(database.db, (db) => ({ pets: createPetsRepository(db) })),
    storage,
    maxPhotoBytes: 1024 * 1024,
    logger,
    deferredRemovals: sweeper,
  });
  return { clock, storage, state, repository, sweeper, pets, logLines };
}

const fileNameOf = (url: string) => url.slice(url.lastIndexOf("/") + 1);

describe("photo removals that fail after a delete commits", () => {
  test("are noted, retried with backoff on the injected clock, then done", async () => {
    const { clock, storage, state, repository, sweeper, pets, logLines } = await setup();
    const pet = await pets.create(newPet());
    const photo = await pets.addPhoto(pet.id, new Blob([pngBytes()]));
    const name = fileNameOf(photo.url);

    state.down = true;
    expect(await pets.deleteMany([pet.id])).toEqual({ deleted: 1, errors: [] });
    expect(logLines.join("")).toContain("could not remove photo files");
    expect(await storage.open(name)).toBeDefined(); // still there: the bucket was away
    expect(await repository.count()).toBe(1);

    // Not due yet: nothing is tried.
    state.removeCalls = 0;
    expect(await sweeper.sweepOnce()).toEqual({ removed: 0, failed: 0 });
    expect(state.removeCalls).toBe(0);

    // Due after the first delay; still down: tried once, pushed back twice as far.
    clock.advance(MINUTE);
    expect(await sweeper.sweepOnce()).toEqual({ removed: 0, failed: 1 });
    clock.advance(MINUTE);
    expect(await sweeper.sweepOnce()).toEqual({ removed: 0, failed: 0 });
    clock.advance(MINUTE);
    expect(await sweeper.sweepOnce()).toEqual({ removed: 0, failed: 1 });
    expect(state.removeCalls).toBe(2);
    const [row] = await repository.due(new Date(clock.now() + 10 * MINUTE), 10);
    expect(row).toEqual({ fileName: name, attempts: 2 });

    // Back: removed, and the note goes.
    state.down = false;
    clock.advance(4 * MINUTE);
    expect(await sweeper.sweepOnce()).toEqual({ removed: 1, failed: 0 });
    expect(await storage.open(name)).toBeUndefined();
    expect(await repository.count()).toBe(0);
  });

  test("the sweep loop runs on its interval until stopped", async () => {
    const { clock, storage, state, repository, sweeper } = await setup();
    const name = storage.newFileName({ extension: "png", contentType: "image/png" });
    await storage.save(name, pngBytes());
    await sweeper.deferRemovals([name], new Error("bucket away"));
    sweeper.start();
    await clock.sleeping(); // swept once at start: not due yet
    expect(state.removeCalls).toBe(0);
    await clock.tick(); // one interval later: due, and removed
    expect(state.removeCalls).toBe(1);
    expect(await storage.open(name)).toBeUndefined();
    expect(await repository.count()).toBe(0);
    await sweeper.stop();
  });

  test("an entry that names a live photo is dropped, never swept", async () => {
    const { clock, storage, state, repository, sweeper, pets } = await setup();
    const pet = await pets.create(newPet());
    const photo = await pets.addPhoto(pet.id, new Blob([pngBytes()]));
    const name = fileNameOf(photo.url);
    await repository.record([name], "a wrong entry", new Date(clock.now()));
    expect(await sweeper.sweepOnce()).toEqual({ removed: 0, failed: 0 });
    expect(state.removeCalls).toBe(0);
    expect(await storage.open(name)).toBeDefined();
    expect(await repository.count()).toBe(0);
  });

  test("a removal that fails after a failed insert is noted too", async () => {
    const { repository } = await setup();
    const { storage } = flakyStorage();
    const failingInsert = createPetsService({
      data: unitOfWork(database.db, (db) => ({
        pets: {
          ...createPetsRepository(db),
          exists: async () => true,
          insertPhoto: async () => {
            throw new Error("insert failed");
          },
        },
      })),
      storage: {
        ...storage,
        remove: async () => {
          throw new Error("bucket away");
        },
      },
      maxPhotoBytes: 1024 * 1024,
      logger: silentLogger,
      deferredRemovals: createObjectDeletionSweeper({
        repository,
        storage,
        logger: silentLogger,
      }),
    });
    const before = await repository.count();
    await expect(
      failingInsert.addPhoto(crypto.randomUUID(), new Blob([pngBytes()])),
    ).rejects.toThrow("insert failed");
    expect(await repository.count()).toBe(before + 1);
  });
});
