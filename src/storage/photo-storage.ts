/** Where photo files live and the public URLs they are served at. */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { CONTENT_TYPE_BY_EXTENSION, type ImageFormat } from "./image-format.ts";
import { storageWriteError } from "./storage-errors.ts";

/** What a save takes: the whole file, or a stream of it (an upload, never held whole). */
export type PhotoBody = Uint8Array | ReadableStream<Uint8Array>;

/** Bytes `start` to `end` of a photo, both included (as in an HTTP Range). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface StoredPhoto {
  size: number;
  contentType: string;
  /** A strong validator: a stored photo's bytes never change, so neither does its tag. */
  etag: string;
  lastModified: Date;
  /** The bytes, or those of `range`, read from storage as they are sent. */
  body(range?: ByteRange): Blob | ReadableStream<Uint8Array>;
}

export interface PhotoStorage {
  /** `local` (DATA_DIR/photos) or `s3` (S3_BUCKET), for logs and the readiness details. */
  readonly kind: "local" | "s3";
  /**
   * Checks at startup that photos can be stored: throws one clear error (naming no secret) when
   * the bucket stays out of reach, at once when the failure is permanent (wrong keys, no bucket).
   */
  ready(): Promise<void>;
  /** A fresh, unguessable file name: the link itself is the credential for viewing. */
  newFileName(format: ImageFormat): string;
  /**
   * Stores the file whole or not at all: a write that fails (a full disk: StorageFullError, one
   * that cannot be written or a bucket that is away: StorageUnwritableError, see
   * storage-errors.ts) leaves nothing behind.
   */
  save(fileName: string, body: PhotoBody): Promise<void>;
  /** Removing a file that is already gone is not an error. */
  remove(fileName: string): Promise<void>;
  /** The photo's size, validators and bytes, or undefined when there is no such photo. */
  open(fileName: string): Promise<StoredPhoto | undefined>;
  url(fileName: string): string;
  /** What every `url` starts with: `url(fileName)` is `urlBase() + fileName`. */
  urlBase(): string;
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

/** Photo file names as `newFileName` makes them: anything else names no photo. */
export const PHOTO_FILE_NAME = /^[A-Za-z0-9_-]{22}\.(jpg|png|webp|gif)$/;

export const newPhotoFileName = (format: ImageFormat) =>
  `${randomBytes(16).toString("base64url")}.${format.extension}`;

/** The content type a stored file name stands for, or undefined when it names no photo. */
export function photoContentType(fileName: string): string | undefined {
  const match = PHOTO_FILE_NAME.exec(fileName);
  return match ? CONTENT_TYPE_BY_EXTENSION[match[1] as ImageFormat["extension"]] : undefined;
}

/** The whole of a body, for writers that take bytes (tests' failing writers). */
export async function bodyBytes(body: PhotoBody): Promise<Uint8Array> {
  return body instanceof Uint8Array ? body : new Uint8Array(await new Response(body).arrayBuffer());
}

export interface LocalPhotoStorageOptions {
  /**
   * Writes a whole file; tests pass one that fails like a full disk (it gets the bytes whole).
   * Unset, a body is streamed to the disk as it comes.
   */
  writeFile?: (path: string, bytes: Uint8Array) => Promise<unknown>;
}

/** A save writes its file in one go: one untouched this long belongs to no running save. */
export const PARTIAL_FILE_MAX_AGE_MS = 60_000;
const PARTIAL_FILE = /^\..+\.partial$/;

export const PHOTO_ROUTE_PREFIX = "/photos/";

/** Streams a body to a file (Bun writes a Response's stream chunk by chunk). */
const writeBody = (path: string, body: PhotoBody) =>
  body instanceof Uint8Array ? Bun.write(path, body) : Bun.write(path, new Response(body));

export function createLocalPhotoStorage(
  dir: string,
  publicUrl: string,
  options: LocalPhotoStorageOptions = {},
): PhotoStorage {
  const { writeFile } = options;
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
    kind: "local",
    // The folder is made on the first save (and a full or read-only disk answers then).
    ready: async () => {},
    newFileName: newPhotoFileName,
    async save(fileName, body) {
      await madeDir().catch((err) => {
        throw storageWriteError(err);
      });
      // Write aside and rename, so a reader never sees a half-written photo.
      const partial = join(dir, `.${fileName}.partial`);
      try {
        if (writeFile) await writeFile(partial, await bodyBytes(body));
        else await writeBody(partial, body);
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
      const contentType = photoContentType(fileName);
      if (!contentType) return undefined;
      const path = join(dir, fileName);
      let stats: Awaited<ReturnType<typeof stat>>;
      try {
        stats = await stat(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw err;
      }
      if (!stats.isFile()) return undefined;
      const file = Bun.file(path);
      return {
        size: stats.size,
        contentType,
        // Saves rename a finished file into place, so size and time name one version of it.
        etag: `"${stats.size.toString(16)}-${Math.trunc(stats.mtimeMs).toString(16)}"`,
        lastModified: stats.mtime,
        body: (range) => (range ? file.slice(range.start, range.end + 1) : file),
      };
    },
    url: (fileName) => `${base}${PHOTO_ROUTE_PREFIX}${fileName}`,
    urlBase: () => `${base}${PHOTO_ROUTE_PREFIX}`,
    setPublicUrl(url) {
      base = url;
    },
  };
}
