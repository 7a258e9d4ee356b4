/** Where photo files live and the public URLs they are served at. */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { CONTENT_TYPE_BY_EXTENSION, type ImageFormat } from "./image-format.ts";
import { storageWriteError } from "./storage-errors.ts";

export interface StoredPhoto {
  body: Blob;
  contentType: string;
}

export interface PhotoStorage {
  /** A fresh, unguessable file name: the link itself is the credential for viewing. */
  newFileName(format: ImageFormat): string;
  /**
   * Stores the file whole or not at all: a write that fails (a full disk: StorageFullError, one
   * that cannot be written: StorageUnwritableError, see storage-errors.ts) leaves nothing behind.
   */
  save(fileName: string, bytes: Uint8Array): Promise<void>;
  /** Removing a file that is already gone is not an error. */
  remove(fileName: string): Promise<void>;
  open(fileName: string): Promise<StoredPhoto | undefined>;
  url(fileName: string): string;
  /**
   * Changes the base of the URLs `url` makes: the server calls it once it listens, when the
   * base depends on the port it got (PORT=0 and no PUBLIC_URL).
   */
  setPublicUrl(publicUrl: string): void;
  /**
   * Removes what saves interrupted by a crash left behind (not the files of saves that may still
   * be running: those are younger than PARTIAL_FILE_MAX_AGE_MS); returns how many went.
   */
  sweepPartialFiles(): Promise<number>;
}

export interface LocalPhotoStorageOptions {
  /** Writes a whole file (Bun.write); tests pass one that fails like a full disk. */
  writeFile?: (path: string, bytes: Uint8Array) => Promise<unknown>;
}

/** A save writes its file in one go: one untouched this long belongs to no running save. */
export const PARTIAL_FILE_MAX_AGE_MS = 60_000;
const PARTIAL_FILE = /^\..+\.partial$/;

export const PHOTO_ROUTE_PREFIX = "/photos/";
const FILE_NAME = /^[A-Za-z0-9_-]{22}\.(jpg|png|webp|gif)$/;

export function createLocalPhotoStorage(
  dir: string,
  publicUrl: string,
  options: LocalPhotoStorageOptions = {},
): PhotoStorage {
  const writeFile = options.writeFile ?? ((path, bytes) => Bun.write(path, bytes));
  // Made on first use, and tried again after a failure (the disk may have been fixed since).
  let ready: Promise<unknown> | undefined;
  const madeDir = () => {
    ready ??= mkdir(dir, { recursive: true }).catch((err) => {
      ready = undefined;
      throw err;
    });
    return ready;
  };
  let base = publicUrl;
  return {
    newFileName: (format) => `${randomBytes(16).toString("base64url")}.${format.extension}`,
    async save(fileName, bytes) {
      await madeDir().catch((err) => {
        throw storageWriteError(err);
      });
      // Write aside and rename, so a reader never sees a half-written photo.
      const partial = join(dir, `.${fileName}.partial`);
      try {
        await writeFile(partial, bytes);
        await rename(partial, join(dir, fileName));
      } catch (err) {
        // At once: a full disk must not stay full of the attempts it refused.
        await unlink(partial).catch(() => {});
        throw storageWriteError(err);
      }
    },
    async sweepPartialFiles() {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
        throw err;
      }
      let removed = 0;
      for (const name of names.filter((n) => PARTIAL_FILE.test(n))) {
        const path = join(dir, name);
        try {
          if (Date.now() - (await stat(path)).mtimeMs < PARTIAL_FILE_MAX_AGE_MS) continue;
          await unlink(path);
          removed++;
        } catch (err) {
          // Gone meanwhile: its save finished or failed, and either way it cleaned up.
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        }
      }
      return removed;
    },
    async remove(fileName) {
      try {
        await unlink(join(dir, fileName));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
    },
    async open(fileName) {
      const match = FILE_NAME.exec(fileName);
      if (!match) return undefined;
      const file = Bun.file(join(dir, fileName));
      if (!(await file.exists())) return undefined;
      const extension = match[1] as ImageFormat["extension"];
      return { body: file, contentType: CONTENT_TYPE_BY_EXTENSION[extension] };
    },
    url: (fileName) => `${base}${PHOTO_ROUTE_PREFIX}${fileName}`,
    setPublicUrl(url) {
      base = url;
    },
  };
}
