/**
 * Photos in an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2…) through Bun's built-in S3
 * client, so every replica serves every photo. Objects stay private: `serve` streams them.
 */

import { S3Client } from "bun";
import { RetryLaterError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { retry } from "../retry.ts";
import { withinTimeout } from "../timeout.ts";
import {
  newPhotoFileName,
  PHOTO_ROUTE_PREFIX,
  type PhotoBody,
  type PhotoStorage,
  photoContentType,
} from "./photo-storage.ts";
import {
  PHOTOS_UNREADABLE,
  READ_RETRY_AFTER_SECONDS,
  StorageUnwritableError,
} from "./storage-errors.ts";

export interface S3StorageConfig {
  bucket: string;
  /** Unset: AWS S3 in `region`. */
  endpoint: string | undefined;
  region: string | undefined;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string | undefined;
  /** The bucket is part of the endpoint's host name (`https://bucket.host`) instead of its path. */
  virtualHostedStyle: boolean;
}

/** Every object this app writes sits under this prefix, so a bucket can be shared. */
export const S3_KEY_PREFIX = "photos/";

/**
 * Multipart parts of the smallest size S3 allows, one in flight at a time: an upload holds about
 * one part in memory, however large the photo and however many uploads run at once.
 */
export const S3_PART_BYTES = 5 * 1024 * 1024;
const S3_QUEUE_SIZE = 1;
/**
 * Streamed uploads sent to the bucket at once per process; the others wait their turn. Each holds
 * about one or two parts in Bun's client, so this bounds what a burst of uploads costs in memory
 * (the waiting ones are temporary files on disk by then, see photo-upload.ts).
 */
export const S3_UPLOADS_AT_ONCE = 8;
/** Bun's client retries a failed part this often before the save fails. */
const S3_RETRIES = 2;

/**
 * Longest wait for a read (HEAD) or a removal: a bucket that stops answering must not hold a
 * request, or a bulk delete, forever. A removal that times out is retried by the sweep.
 */
export const S3_REQUEST_TIMEOUT_MS = 10_000;

/**
 * Longest wait for one step of a save: a single PUT, one part of a multipart upload, its
 * completion. Long enough for a 5 MiB part over a slow link (about 0.7 Mbit/s), short enough that a
 * bucket that stops answering turns uploads into 503s within a minute instead of holding them, and
 * their turns, for ever. Bun's client cannot be told to stop: the abandoned request goes on
 * unobserved, and the multipart upload it belonged to is never completed (storage.md).
 */
export const S3_WRITE_TIMEOUT_MS = 60_000;

/** `work`, or a `Timeout` error naming `what` once `ms` have passed. */
const withTimeout = <T>(work: Promise<T>, what: string, ms: number) =>
  withinTimeout(work, ms, () =>
    Object.assign(new Error(`${what} took longer than ${ms} ms`), { code: "Timeout" }),
  );

/** Error codes that mean "no such object" (a HEAD's 404 has no body: Bun calls it NoSuchKey). */
const MISSING = new Set(["NoSuchKey", "NotFound", "ENOENT"]);

const errorCode = (err: unknown) => (err as { code?: unknown } | null)?.code;

/** A one-line description of an S3 failure: the service's code and message, never credentials. */
const describe = (err: unknown) =>
  `S3 ${String(errorCode(err) ?? (err as Error)?.name ?? "error")}: ${(err as Error)?.message ?? err}`;

export function createS3Client(config: S3StorageConfig): S3Client {
  return new S3Client({
    bucket: config.bucket,
    endpoint: config.endpoint,
    region: config.region,
    accessKeyId: config.accessKeyId,
    secretAccessKey: config.secretAccessKey,
    sessionToken: config.sessionToken,
    virtualHostedStyle: config.virtualHostedStyle,
  });
}

export function createS3PhotoStorage(
  client: S3Client,
  publicUrl: string,
  logger: Logger,
  options: {
    uploadsAtOnce?: number;
    startupAttempts?: number;
    requestTimeoutMs?: number;
    writeTimeoutMs?: number;
    /** How to wait between startup attempts; tests inject one to see the delays. */
    sleep?: (ms: number) => Promise<void>;
  } = {},
): PhotoStorage {
  let base = publicUrl;
  const key = (fileName: string) => `${S3_KEY_PREFIX}${fileName}`;
  const turns = createTurns(options.uploadsAtOnce ?? S3_UPLOADS_AT_ONCE);
  const timeoutMs = options.requestTimeoutMs ?? S3_REQUEST_TIMEOUT_MS;
  const writeTimeoutMs = options.writeTimeoutMs ?? S3_WRITE_TIMEOUT_MS;
  const step = <T>(work: T | Promise<T>, what: string) =>
    withTimeout(Promise.resolve(work), what, writeTimeoutMs);

  async function uploadStream(objectKey: string, type: string, body: ReadableStream<Uint8Array>) {
    const writer = client.file(objectKey).writer({
      type,
      partSize: S3_PART_BYTES,
      queueSize: S3_QUEUE_SIZE,
      retry: S3_RETRIES,
    });
    try {
      let buffered = 0;
      for await (const chunk of body) {
        await step(writer.write(chunk), "S3 upload part");
        buffered += chunk.byteLength;
        // The writer buffers whatever it is given (write never pushes back): waiting for it
        // at each part keeps an upload to about one part in memory. Parts stay whole:
        // Bun cuts them at partSize, only the last may be shorter.
        if (buffered >= S3_PART_BYTES) {
          await step(writer.flush(), "S3 upload part");
          buffered = 0;
        }
      }
      await step(writer.end(), "S3 upload completion");
    } catch (err) {
      // Aborts the multipart upload; its parts are dropped by S3. A bucket that does not answer
      // would not answer this either.
      await step(writer.end(err as Error), "S3 upload abort").catch(() => {});
      throw err;
    }
  }
  return {
    kind: "s3",
    async ready() {
      await checkBucket(client, logger, options.startupAttempts ?? STARTUP_ATTEMPTS, options.sleep);
    },
    newFileName: newPhotoFileName,
    async save(fileName, body: PhotoBody) {
      const type = photoContentType(fileName) ?? "application/octet-stream";
      try {
        if (body instanceof Uint8Array) {
          await step(client.write(key(fileName), body, { type }), "S3 PUT");
          return;
        }
        // A multipart upload, one part at a time, a bounded number at once (see S3_UPLOADS_AT_ONCE).
        await turns.take(timeoutMs);
        try {
          await uploadStream(key(fileName), type, body);
        } finally {
          turns.give();
        }
      } catch (err) {
        // Whatever the upload left (a single PUT is all or nothing; an aborted multipart upload
        // leaves no object) is not visible: a failed save stores nothing.
        throw new StorageUnwritableError(describe(err), {
          cause: err,
          // A turn never taken sent nothing.
          mayHaveLanded: errorCode(err) === "Timeout" && !/turn/.test((err as Error).message),
        });
      }
    },
    async remove(fileName) {
      // DELETE of a missing object succeeds in S3: removing twice is harmless.
      await withTimeout(client.delete(key(fileName)), "S3 DELETE", timeoutMs);
    },
    async open(fileName) {
      const contentType = photoContentType(fileName);
      if (!contentType) return undefined;
      const file = client.file(key(fileName));
      let stats: Awaited<ReturnType<typeof file.stat>>;
      try {
        stats = await withTimeout(file.stat(), "S3 HEAD", timeoutMs);
      } catch (err) {
        if (MISSING.has(String(errorCode(err)))) return undefined;
        logger.warn("photo storage cannot be read", { file: fileName, err: describe(err) });
        throw new RetryLaterError("unavailable", PHOTOS_UNREADABLE, READ_RETRY_AFTER_SECONDS);
      }
      return {
        size: stats.size,
        contentType,
        etag: stats.etag,
        lastModified: stats.lastModified,
        // A stream, not the S3File: a Response made from an S3File redirects to a presigned URL.
        body: (range) => (range ? file.slice(range.start, range.end + 1) : file).stream(),
      };
    },
    url: (fileName) => `${base}${PHOTO_ROUTE_PREFIX}${fileName}`,
    urlBase: () => `${base}${PHOTO_ROUTE_PREFIX}`,
    setPublicUrl(url) {
      base = url;
    },
    // A multipart upload cut short by a crash leaves parts, not an object: a bucket lifecycle rule
    // (AbortIncompleteMultipartUpload, docs/storage.md) removes them. Nothing to sweep here.
    sweepPartialFiles: async () => 0,
  };
}

/** Answers that no retry changes: wrong keys or signature, no such bucket, no permission. */
const PERMANENT = new Set([
  "AccessDenied",
  "AllAccessDisabled",
  "InvalidAccessKeyId",
  "InvalidBucketName",
  "NoSuchBucket",
  "SignatureDoesNotMatch",
  "ERR_S3_MISSING_CREDENTIALS",
  "ERR_S3_INVALID_ENDPOINT",
  "ERR_S3_INVALID_SIGNATURE",
]);
const STARTUP_ATTEMPTS = 5;

/**
 * Lists the keys under a prefix that holds none (so the answer is never cut into pages: s3rver,
 * the tests' S3, cannot make page tokens under Bun): it needs the bucket, the keys and the network
 * to work, and reads no photo. Retries
 * with backoff (0.5 s, 1 s, 2 s…) while the bucket is out of reach; a permanent refusal fails at once.
 */
async function checkBucket(
  client: S3Client,
  logger: Logger,
  attempts: number,
  sleep?: (ms: number) => Promise<void>,
): Promise<void> {
  try {
    await retry(
      () => client.list({ prefix: `${S3_KEY_PREFIX}.petbooks-ready-check`, maxKeys: 1 }),
      {
        times: attempts,
        delayMs: 500,
        exponential: true,
        jitter: false,
        retryOn: (err) => !PERMANENT.has(String(errorCode(err) ?? "")),
        // Not retry's own line: Bun's S3 errors say what failed in their code, not their message.
        onRetry: (err, attempt) =>
          logger.warn("photo storage not reachable yet; retrying", { attempt, err: describe(err) }),
        sleep,
      },
    );
  } catch (err) {
    throw new Error(`photo storage (S3_BUCKET) cannot be used: ${describe(err)}`);
  }
}

/** At most `size` holders at once; the others wait in order. */
function createTurns(size: number) {
  let free = size;
  const waiting: (() => void)[] = [];
  return {
    /** A turn, or a `Timeout` error once `ms` passed without one. */
    async take(ms: number): Promise<void> {
      if (free > 0) {
        free--;
        return;
      }
      let turn = () => {};
      const given = new Promise<void>((resolve) => {
        turn = resolve;
        waiting.push(turn);
      });
      await withTimeout(given, "a turn to upload to S3", ms).catch((err: unknown) => {
        const at = waiting.indexOf(turn);
        if (at !== -1) waiting.splice(at, 1);
        // Given in the meantime: hand it on rather than lose it.
        else this.give();
        throw err;
      });
    },
    give(): void {
      const next = waiting.shift();
      if (next) next();
      else free++;
    },
  };
}
