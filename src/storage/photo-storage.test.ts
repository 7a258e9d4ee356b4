import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalPhotoStorage } from "./photo-storage.ts";

const dir = mkdtempSync(join(tmpdir(), "petbooks-storage-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("local photo storage URLs", () => {
  test("start with the public URL, which the server may learn after it listens", async () => {
    const storage = createLocalPhotoStorage(dir, "http://localhost:0");
    const name = storage.newFileName({ extension: "png", contentType: "image/png" });
    // Also waits for the storage to have made its directory, so afterAll's cleanup comes after.
    await storage.save(name, new Uint8Array([1]));
    expect(storage.url(name)).toBe(`http://localhost:0/photos/${name}`);
    storage.setPublicUrl("http://localhost:41234");
    expect(storage.url(name)).toBe(`http://localhost:41234/photos/${name}`);
  });
});
