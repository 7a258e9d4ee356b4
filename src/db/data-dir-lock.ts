/**
 * An exclusive lock on the embedded database's directory. PGlite is a single-process database:
 * a second process opening the same files would corrupt them, so it must fail at once instead.
 */
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";

export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
}

export interface DataDirLock {
  release(): void;
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function lockDataDir(dir: string): DataDirLock {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "petbooks.lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return {
        release() {
          try {
            if (readFileSync(path, "utf8") === String(process.pid)) unlinkSync(path);
          } catch {}
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const owner = Number(readFileSync(path, "utf8"));
      if (isAlive(owner)) {
        throw new DataDirLockedError(
          `the embedded database in ${dir} is in use by another petbooks process (pid ${owner}); ` +
            "stop it first, or set DATABASE_URL to share a PostgreSQL server",
        );
      }
      // The owner died without cleaning up (crash, kill -9, container restart): take over.
      unlinkSync(path);
    }
  }
  throw new DataDirLockedError(`could not lock ${dir}: another process keeps taking the lock`);
}
