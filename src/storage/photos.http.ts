/**
 * Serves stored photos at their unguessable URLs, without the API key, cached for a year. Every
 * replica streams from the same storage (the bucket, with S3_BUCKET), so a link works on all of
 * them; conditional requests (ETag, Last-Modified) and single byte ranges are answered per
 * RFC 9110, the same for local files and objects in a bucket.
 */

import { Elysia } from "elysia";
import { NotFoundError, RetryLaterError } from "../errors.ts";
import { problem, problemResponse } from "../http/problem.ts";
import type { Logger } from "../logger.ts";
import type { ByteRange, PhotoStorage, StoredPhoto } from "./photo-storage.ts";
import { errorSummary, PHOTOS_UNREADABLE, READ_RETRY_AFTER_SECONDS } from "./storage-errors.ts";

export function photoRoutes(storage: PhotoStorage, logger?: Logger) {
  return new Elysia({ name: "photos" }).get(
    "/photos/:fileName",
    async ({ params, request, set }) => {
      const stored = await storage.open(params.fileName);
      if (!stored) throw new NotFoundError("No such photo.");
      // A file's body (a Blob) is sent by Bun with its length; a stream from the bucket is
      // checked to start before the answer does (see `started`).
      let streamed = false;
      const photo: StoredPhoto = {
        ...stored,
        body(range) {
          const bytes = stored.body(range);
          streamed = !(bytes instanceof Blob);
          return bytes;
        },
      };
      const response = photoResponse(
        photo,
        request.headers,
        String(set.headers["x-request-id"] ?? ""),
        {
          // Elysia answers HEAD with this route, dropping the body: none is opened then (an S3
          // download nobody reads would hold a connection of the client's pool).
          head: request.method === "HEAD",
        },
      );
      if (!streamed) return response;
      return started(response, (err) =>
        logger?.warn("photo could not be read", { file: params.fileName, err: errorSummary(err) }),
      );
    },
    { detail: { hide: true } },
  );
}

/** The answer to a GET (or HEAD) of `photo`: 200, 206 (a range), 304 (not modified) or 416. */
export function photoResponse(
  photo: StoredPhoto,
  request: Headers,
  requestId = "",
  options: { head?: boolean } = {},
): Response {
  const body = (range?: ByteRange) => {
    if (options.head) return null;
    const bytes = photo.body(range);
    // Never more than the headers announce: an S3-compatible server that answers a range with
    // more (s3rver sends the whole object for `bytes=0-0`) must not break the framing.
    return bytes instanceof Blob
      ? bytes
      : exactly(bytes, range ? range.end - range.start + 1 : photo.size);
  };
  const headers: Record<string, string> = {
    // A file name is never reused for other bytes.
    "cache-control": "public, max-age=31536000, immutable",
    etag: photo.etag,
    "last-modified": photo.lastModified.toUTCString(),
    "accept-ranges": "bytes",
    "x-content-type-options": "nosniff",
  };
  if (notModified(photo, request)) return new Response(null, { status: 304, headers });
  const wanted = request.get("range");
  const range =
    wanted && rangeApplies(photo, request.get("if-range"))
      ? parseRange(wanted, photo.size)
      : undefined;
  if (range === "unsatisfiable") {
    const detail = `The photo has ${photo.size} bytes: the range asked for is outside them.`;
    return problemResponse(problem("range_not_satisfiable", detail, requestId), {
      ...headers,
      "content-range": `bytes */${photo.size}`,
    });
  }
  headers["content-type"] = photo.contentType;
  if (range) {
    headers["content-range"] = `bytes ${range.start}-${range.end}/${photo.size}`;
    headers["content-length"] = String(range.end - range.start + 1);
    return new Response(body(range), { status: 206, headers });
  }
  headers["content-length"] = String(photo.size);
  return new Response(body(), { status: 200, headers });
}

/** RFC 9110 §13.2.2: If-None-Match when sent, otherwise If-Modified-Since. */
function notModified(photo: StoredPhoto, request: Headers): boolean {
  const noneMatch = request.get("if-none-match");
  if (noneMatch !== null) return etagListMatches(noneMatch, photo.etag, "weak");
  const since = request.get("if-modified-since");
  if (since === null) return false;
  const date = Date.parse(since);
  // HTTP dates have whole seconds; a date later than now is invalid (RFC 9110 §13.1.3), ignored.
  return (
    !Number.isNaN(date) &&
    date <= Date.now() &&
    Math.floor(photo.lastModified.getTime() / 1000) * 1000 <= date
  );
}

/** If-Range: the range is served only while the validator still names this version. */
function rangeApplies(photo: StoredPhoto, ifRange: string | null): boolean {
  if (ifRange === null) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith("W/")) {
    return etagListMatches(value, photo.etag, "strong");
  }
  const date = Date.parse(value);
  return !Number.isNaN(date) && Math.floor(photo.lastModified.getTime() / 1000) * 1000 === date;
}

const opaque = (tag: string) => tag.trim().replace(/^W\//, "");

function etagListMatches(list: string, etag: string, comparison: "weak" | "strong"): boolean {
  if (list.trim() === "*") return true;
  return list.split(",").some((candidate) => {
    const tag = candidate.trim();
    if (comparison === "strong") return !tag.startsWith("W/") && tag === etag;
    return opaque(tag) === opaque(etag);
  });
}

/**
 * One range of `Range: bytes=…` (`a-b`, `a-`, `-n`), clipped to the size; several ranges or a
 * header that does not parse are ignored (the whole photo is sent, as RFC 9110 allows).
 */
export function parseRange(header: string, size: number): ByteRange | "unsatisfiable" | undefined {
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return undefined;
  const [, first, last] = match as unknown as [string, string, string];
  if (first === "" && last === "") return undefined;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== "" && Number(last) < start) return undefined;
  if (start >= size) return "unsatisfiable";
  return { start, end };
}

/**
 * The response once its body's first bytes have been read: a bucket that answered the HEAD but
 * fails the GET (gone meanwhile, throttling) gets a 503 with Retry-After, not a 200 cut at once.
 * A failure later in the body can only cut the response; it is logged once, as a warning.
 */
async function started(response: Response, onError: (err: unknown) => void): Promise<Response> {
  const body = response.body;
  if (!body || (response.status !== 200 && response.status !== 206)) return response;
  const reader = body.getReader();
  let first: Awaited<ReturnType<typeof reader.read>>;
  try {
    first = await reader.read();
  } catch (err) {
    onError(err);
    reader.releaseLock();
    await body.cancel().catch(() => {});
    throw new RetryLaterError("unavailable", PHOTOS_UNREADABLE, READ_RETRY_AFTER_SECONDS);
  }
  let pending: Uint8Array | undefined = first.done ? undefined : first.value;
  let ended = first.done;
  const rest = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (pending) {
        controller.enqueue(pending);
        pending = undefined;
        return;
      }
      if (ended) return controller.close();
      try {
        const next = await reader.read();
        if (next.done) {
          ended = true;
          controller.close();
        } else {
          controller.enqueue(next.value);
        }
      } catch (err) {
        onError(err);
        // Cut, never ended as if whole; with no reason given, Bun prints no stack trace of it.
        controller.error(undefined);
      }
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return new Response(rest, { status: response.status, headers: response.headers });
}

/** The first `length` bytes of `source`; one that ends sooner fails (a cut response, never a short one). */
function exactly(source: ReadableStream<Uint8Array>, length: number): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let left = length;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (left === 0) {
        controller.close();
        await reader.cancel().catch(() => {});
        return;
      }
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (err) {
        // Passed on to the reader (`started` logs it), not thrown.
        controller.error(err);
        return;
      }
      const { done, value } = next;
      if (done) {
        controller.error(new Error(`the photo ended ${left} bytes early`));
        return;
      }
      const chunk = value.byteLength > left ? value.subarray(0, left) : value;
      left -= chunk.byteLength;
      controller.enqueue(chunk);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}
