/** Where photo files live and the public URLs they are served at. */
import { randomBytes } from "node:crypto";
import { mkdir, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { CONTENT_TYPE_BY_EXTENSION, type ImageFormat } from "./image-format.ts";

export interface StoredPhoto {
  body: Blob;
  contentType: string;
}

export interface PhotoStorage {
  /** A fresh, unguessable file name: the link itself is the credential for viewing. */
  newFileName(format: ImageFormat): string;
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
}

export const PHOTO_ROUTE_PREFIX = "/photos/";
const FILE_NAME = /^[A-Za-z0-9_-]{22}\.(jpg|png|webp|gif)$/;

export function createLocalPhotoStorage(dir: string, publicUrl: string): PhotoStorage {
  const ready = mkdir(dir, { recursive: true });
  let base = publicUrl;
  return {
    newFileName: (format) => `${randomBytes(16).toString("base64url")}.${format.extension}`,
    async save(fileName, bytes) {
      await ready;
      // Write aside and rename, so a reader never sees a half-written photo.
      const partial = join(dir, `.${fileName}.partial`);
      await Bun.write(partial, bytes);
      await rename(partial, join(dir, fileName));
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
