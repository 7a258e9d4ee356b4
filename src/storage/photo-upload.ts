/**
 * The photo upload's body parser: multipart/form-data read as it streams in, file parts written
 * to temporary files chunk by chunk, so an upload costs a few chunks of memory whatever its size
 * (Bun's own `formData()` holds the whole body, and then the file, in memory).
 *
 * Same answers as the other parsers (parsers.ts): 415 for another content type, 413 past the
 * request's limit (a declared length before reading, a streamed body as soon as it passes it),
 * 400 for a body that is not multipart, 422 for a field given twice or named `__proto__`.
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, open, readdir, stat, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AppError,
  PayloadTooLargeError,
  RetryLaterError,
  UnsupportedMediaTypeError,
  ValidationError,
} from "../errors.ts";
import {
  bodyLimitOf,
  bodyTooLarge,
  fieldsOf,
  INVALID_MULTIPART,
  limitedChunks,
  MULTIPART_REQUIRED,
  refuseUnreadableBody,
} from "../http/parsers.ts";
import { STORAGE_RETRY_AFTER_SECONDS } from "../http/problem.ts";
import {
  STORAGE_UNWRITABLE,
  StorageFullError,
  StorageUnwritableError,
  storageWriteError,
} from "./storage-errors.ts";

/** A part's headers never need more than this; a longer header block is not multipart we take. */
const MAX_PART_HEADER_BYTES = 16 * 1024;
/** Text fields stay in memory, so they are kept short (the upload has none it needs). */
export const MAX_TEXT_FIELD_BYTES = 64 * 1024;

const MULTIPART_TYPE = /^multipart\/form-data\b/i;
const BOUNDARY = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i;
const CRLF = Buffer.from("\r\n");
const HEADERS_END = Buffer.from("\r\n\r\n");

/** Temporary files of each request, removed once its response is sent (`discardUpload`). */
const spooled = new WeakMap<Request, string[]>();
/** Every temporary file of this process's uploads that has not been removed yet. */
const live = new Set<string>();

export interface PhotoUploadOptions {
  /** Where file parts are written while the request is handled; the system's temp folder. */
  dir?: string;
}

const invalid = () => new AppError("bad_request", INVALID_MULTIPART);

interface PartSink {
  write(bytes: Uint8Array): Promise<void>;
  finish(): Promise<[string, string | Blob]>;
  abort(): Promise<void>;
}

/** Parses a photo upload; use as a route's `parse`, with `discardUpload` after the response. */
export function photoUploadBody(options: PhotoUploadOptions = {}) {
  const dir = options.dir ?? tmpdir();
  return async ({ request }: { request: Request }): Promise<unknown> => {
    const type = request.headers.get("content-type") ?? "";
    if (!MULTIPART_TYPE.test(type)) throw new UnsupportedMediaTypeError(MULTIPART_REQUIRED);
    refuseUnreadableBody(request, false);
    const match = BOUNDARY.exec(type);
    if (!match) throw invalid();
    const limit = bodyLimitOf(request);
    const declared = Number(request.headers.get("content-length") ?? Number.NaN);
    if (declared > limit) throw new PayloadTooLargeError(bodyTooLarge(limit));
    const paths: string[] = [];
    spooled.set(request, paths);
    try {
      const entries = await readParts(request, `${match[1] ?? match[2]}`, limit, (part) =>
        part.filename === undefined ? textSink(part.name) : fileSink(part, dir, paths),
      );
      return fieldsOf(entries);
    } catch (err) {
      await discardUpload(request);
      throw err;
    }
  };
}

/**
 * A temporary folder that is full or read-only is no bad request: the client is told to come back
 * (503 with Retry-After), as when photo storage itself refuses writes.
 */
function spoolError(err: unknown): unknown {
  const typed = storageWriteError(err);
  if (typed instanceof StorageFullError || typed instanceof StorageUnwritableError) {
    return new RetryLaterError("unavailable", STORAGE_UNWRITABLE, STORAGE_RETRY_AFTER_SECONDS);
  }
  return err;
}

/** An upload's temporary file this old belongs to no running request (a crash left it). */
export const STALE_UPLOAD_MS = 3_600_000;
const UPLOAD_FILE = /^petbooks-upload-[0-9a-f]{24}$/;

/**
 * Removes the temporary files that requests cut short by a crash left in `dir` (those older than
 * STALE_UPLOAD_MS: other processes on the host may be uploading into the same folder); says how many.
 */
export async function sweepStaleUploads(dir = tmpdir(), now = Date.now()): Promise<number> {
  let removed = 0;
  for (const name of (await readdir(dir)).filter((n) => UPLOAD_FILE.test(n))) {
    const path = join(dir, name);
    try {
      if (now - (await stat(path)).mtimeMs < STALE_UPLOAD_MS) continue;
      await unlink(path);
      removed++;
    } catch (err) {
      // Gone meanwhile: its request finished and cleaned up.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return removed;
}

/** Removes the request's temporary files (call it once the response is sent). */
export async function discardUpload(request: Request): Promise<void> {
  const paths = spooled.get(request) ?? [];
  spooled.delete(request);
  await Promise.all(paths.map(removeSpooled));
}

/**
 * Removes the temporary files of the uploads still running (call it once the server has stopped:
 * the requests its shutdown cut short never get to remove their own); says how many.
 */
export async function discardInFlightUploads(): Promise<number> {
  const paths = [...live];
  await Promise.all(paths.map(removeSpooled));
  return paths.length;
}

async function removeSpooled(path: string): Promise<void> {
  live.delete(path);
  await unlink(path).catch(() => {});
}

interface PartHeaders {
  name: string;
  filename: string | undefined;
  contentType: string | undefined;
}

async function readParts(
  request: Request,
  boundary: string,
  limit: number,
  sinkFor: (part: PartHeaders) => PartSink,
): Promise<[string, string | Blob][]> {
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const entries: [string, string | Blob][] = [];
  // Changed inside `step`, where the compiler cannot see it: always read through `current()`.
  let state = "preamble" as "preamble" | "boundary" | "headers" | "body" | "done";
  const current = () => state;
  // The first boundary has no CRLF before it: one is put there, so every delimiter looks alike.
  let buffer: Buffer = Buffer.from(CRLF);
  let sink: PartSink | undefined;

  const step = async (): Promise<boolean> => {
    switch (state) {
      case "preamble": {
        const at = buffer.indexOf(delimiter);
        if (at < 0) {
          buffer = buffer.subarray(Math.max(0, buffer.length - delimiter.length + 1));
          return false;
        }
        buffer = buffer.subarray(at + delimiter.length);
        state = "boundary";
        return true;
      }
      case "boundary": {
        if (buffer.length < 2) return false;
        if (buffer[0] === 0x2d && buffer[1] === 0x2d) {
          state = "done";
          return false;
        }
        const end = buffer.indexOf(CRLF);
        if (end < 0) {
          if (buffer.length > 256) throw invalid();
          return false;
        }
        // Only transport padding (spaces, tabs) may sit between a boundary and its CRLF.
        if (!/^[ \t]*$/.test(buffer.subarray(0, end).toString("latin1"))) throw invalid();
        buffer = buffer.subarray(end + 2);
        state = "headers";
        return true;
      }
      case "headers": {
        const end = buffer.indexOf(HEADERS_END);
        // The same limit whether the block came in one chunk or in many.
        if (end > MAX_PART_HEADER_BYTES) throw invalid();
        if (end < 0) {
          if (buffer.length > MAX_PART_HEADER_BYTES) throw invalid();
          return false;
        }
        sink = sinkFor(partHeaders(buffer.subarray(0, end).toString("utf8")));
        buffer = buffer.subarray(end + HEADERS_END.length);
        state = "body";
        return true;
      }
      case "body": {
        const at = buffer.indexOf(delimiter);
        const part = sink as PartSink;
        if (at < 0) {
          // All but what could be the start of a delimiter split across chunks.
          const safe = buffer.length - delimiter.length + 1;
          if (safe > 0) {
            await part.write(buffer.subarray(0, safe));
            buffer = buffer.subarray(safe);
          }
          return false;
        }
        await part.write(buffer.subarray(0, at));
        entries.push(await part.finish());
        sink = undefined;
        buffer = buffer.subarray(at + delimiter.length);
        state = "boundary";
        return true;
      }
      default:
        return false;
    }
  };

  const body = request.body;
  if (!body) throw invalid();
  try {
    for await (const chunk of limitedChunks(body, limit)) {
      // Past the end: the epilogue is read (to count it) and ignored.
      if (current() === "done") continue;
      const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      buffer = buffer.length === 0 ? bytes : Buffer.concat([buffer, bytes]);
      while (await step()) {}
    }
    if (current() !== "done") throw invalid();
    return entries;
  } catch (err) {
    await sink?.abort();
    throw err;
  }
}

/** Content-Disposition's name and filename, and the part's Content-Type. */
function partHeaders(block: string): PartHeaders {
  let disposition: string | undefined;
  let contentType: string | undefined;
  for (const line of block.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw invalid();
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-disposition") disposition = value;
    else if (name === "content-type") contentType = value;
  }
  if (!disposition || !/^form-data\s*(;|$)/i.test(disposition)) throw invalid();
  const params = new Map<string, string>();
  for (const m of disposition.matchAll(/;\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g)) {
    const key = (m[1] as string).toLowerCase();
    const raw = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : (m[3] ?? "").trim();
    if (!params.has(key)) params.set(key, raw);
  }
  const name = params.get("name");
  if (name === undefined) throw invalid();
  return { name, filename: params.get("filename"), contentType };
}

function textSink(name: string): PartSink {
  const chunks: Uint8Array[] = [];
  let size = 0;
  return {
    async write(bytes) {
      size += bytes.length;
      if (size > MAX_TEXT_FIELD_BYTES) {
        throw new ValidationError("Invalid body.", [
          { path: `/${name}`, message: `is longer than ${MAX_TEXT_FIELD_BYTES} bytes` },
        ]);
      }
      chunks.push(new Uint8Array(bytes)); // a copy: the parser's buffer is reused
    },
    async finish() {
      return [name, Buffer.concat(chunks).toString("utf8")];
    },
    async abort() {},
  };
}

function fileSink(part: PartHeaders, dir: string, paths: string[]): PartSink {
  const path = join(dir, `petbooks-upload-${randomBytes(12).toString("hex")}`);
  paths.push(path);
  live.add(path);
  let handle: Promise<FileHandle> | undefined;
  const file = () => {
    handle ??= open(path, "wx", 0o600).catch((err) => {
      throw spoolError(err);
    });
    return handle;
  };
  return {
    async write(bytes) {
      if (bytes.length === 0) return;
      try {
        // Awaited: the request is read no faster than the disk takes it.
        await (await file()).write(bytes);
      } catch (err) {
        throw spoolError(err);
      }
    },
    async finish() {
      await (await file()).close();
      const type = part.contentType ?? "application/octet-stream";
      return [part.name, Bun.file(path, { type })];
    },
    async abort() {
      if (handle) await (await handle).close().catch(() => {});
      await removeSpooled(path);
    },
  };
}
