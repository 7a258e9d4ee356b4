import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { DataDirLockedError, lockDataDir } from "./data-dir-lock.ts";

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "petbooks-lock-"));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}, TEARDOWN_TIMEOUT_MS);

describe("lockDataDir", () => {
  test("takes and releases the lock", () => {
    const dir = tempDir();
    const lock = lockDataDir(dir);
    expect(readFileSync(join(dir, "petbooks.lock"), "utf8")).toBe(String(process.pid));
    lock.release();
    expect(existsSync(join(dir, "petbooks.lock"))).toBe(false);
  });

  test("refuses at once while a live process holds it", () => {
    const dir = tempDir();
    const other = Bun.spawn(["sleep", "30"]);
    try {
      writeFileSync(join(dir, "petbooks.lock"), String(other.pid));
      expect(() => lockDataDir(dir)).toThrow(DataDirLockedError);
      expect(() => lockDataDir(dir)).toThrow(
        `in use by another petbooks process (pid ${other.pid})`,
      );
    } finally {
      other.kill();
    }
  });

  test("takes over a lock left by a dead process", async () => {
    const dir = tempDir();
    const dead = Bun.spawn(["true"]);
    await dead.exited;
    writeFileSync(join(dir, "petbooks.lock"), String(dead.pid));
    const lock = lockDataDir(dir);
    expect(readFileSync(join(dir, "petbooks.lock"), "utf8")).toBe(String(process.pid));
    lock.release();
  });

  test("creates the directory", () => {
    const dir = join(tempDir(), "nested", "data");
    lockDataDir(dir).release();
    expect(existsSync(dir)).toBe(true);
  });
});
