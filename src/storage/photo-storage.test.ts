import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalPhotoStorage, PARTIAL_FILE_MAX_AGE_MS } from "./photo-storage.ts";
import { StorageFullError, StorageUnwritableError } from "./storage-errors.ts";

const dir = mkdtempSync(join(tmpdir(), "petbooks-storage-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PNG = { extension: "png", contentType: "image/png" } as const;
const errno = (code: string) => Object.assign(new Error(`${code}: simulated`), { code });

/** A folder of its own per test, so one test's files never meet another's. */
const freshDir = () => mkdtempSync(join(dir, "case-"));

describe("local photo storage URLs", () => {
  test("start with the public URL, which the server may learn after it listens", async () => {
    const storage = createLocalPhotoStorage(dir, "http://localhost:0");
    const name = storage.newFileName(PNG);
    // Also waits for the storage to have made its directory, so afterAll's cleanup comes after.
    await storage.save(name, new Uint8Array([1]));
    expect(storage.url(name)).toBe(`http://localhost:0/photos/${name}`);
    storage.setPublicUrl("http://localhost:41234");
    expect(storage.url(name)).toBe(`http://localhost:41234/photos/${name}`);
  });
});

describe("a write that fails", () => {
  test.each([
    ["ENOSPC", "full", StorageFullError],
    ["EDQUOT", "full", StorageFullError],
    ["EROFS", "unwritable", StorageUnwritableError],
    ["EACCES", "unwritable", StorageUnwritableError],
  ] as const)("%s: the storage is %s, and no file is left behind", async (code, _, type) => {
    const photos = freshDir();
    const storage = createLocalPhotoStorage(photos, "http://x", {
      // Half the file made it to the disk, as when the disk fills up during the write.
      writeFile: async (path, bytes) => {
        await Bun.write(path, bytes.subarray(0, bytes.length / 2));
        throw errno(code);
      },
    });
    const err = await storage.save(storage.newFileName(PNG), new Uint8Array(100)).catch((e) => e);
    expect(err).toBeInstanceOf(type);
    expect((err as Error).message).toStartWith(`${code}: `);
    expect(((err as Error).cause as { code: string }).code).toBe(code);
    expect(readdirSync(photos)).toEqual([]);
  });

  test("any other failure is passed on as it is, and leaves no file behind either", async () => {
    const photos = freshDir();
    const failure = errno("EIO");
    const storage = createLocalPhotoStorage(photos, "http://x", {
      writeFile: async (path) => {
        await Bun.write(path, "x");
        throw failure;
      },
    });
    expect(await storage.save(storage.newFileName(PNG), new Uint8Array(1)).catch((e) => e)).toBe(
      failure,
    );
    expect(readdirSync(photos)).toEqual([]);
  });

  test("a photo folder that cannot be made fails the save", async () => {
    const blocker = join(freshDir(), "a-file");
    writeFileSync(blocker, "");
    // A folder inside a file: ENOTDIR, passed on; the storage tries again on the next save.
    const storage = createLocalPhotoStorage(join(blocker, "photos"), "http://x");
    const err = await storage.save(storage.newFileName(PNG), new Uint8Array(1)).catch((e) => e);
    expect((err as { code: string }).code).toBe("ENOTDIR");
  });
});

describe("sweeping partial files", () => {
  test("removes those of interrupted saves, not fresh ones nor photos", async () => {
    const photos = freshDir();
    const storage = createLocalPhotoStorage(photos, "http://x");
    const kept = storage.newFileName(PNG);
    await storage.save(kept, new Uint8Array([1, 2, 3]));
    const old = (Date.now() - PARTIAL_FILE_MAX_AGE_MS - 60_000) / 1000;
    for (const name of [".a.png.partial", ".b.jpg.partial"]) {
      writeFileSync(join(photos, name), "half");
      utimesSync(join(photos, name), old, old);
    }
    // A save that may still be running elsewhere (a second `serve` on the same folder).
    writeFileSync(join(photos, ".c.png.partial"), "being written");
    expect(await storage.sweepPartialFiles()).toBe(2);
    expect(readdirSync(photos).sort()).toEqual([".c.png.partial", kept].sort());
    expect(await storage.sweepPartialFiles()).toBe(0);
  });

  test("a photo folder that does not exist yet has nothing to sweep", async () => {
    const storage = createLocalPhotoStorage(join(freshDir(), "not-yet"), "http://x");
    expect(await storage.sweepPartialFiles()).toBe(0);
  });
});
