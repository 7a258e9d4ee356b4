import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { S3Client } from "bun";
import { silentLogger } from "../logger.ts";
import { capturingLogger } from "../testing/logger.ts";
import { startTestS3Server, type TestS3Server } from "../testing/s3.ts";
import { recordingSleep } from "../testing/sleep.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import {
  createLocalPhotoStorage,
  PARTIAL_FILE_MAX_AGE_MS,
  type PhotoStorage,
  type StoredPhoto,
} from "./photo-storage.ts";
import { photoResponse } from "./photos.http.ts";
import { pngBytes } from "./png.ts";
import { createS3Client, createS3PhotoStorage } from "./s3-photo-storage.ts";
import { StorageFullError, StorageUnwritableError } from "./storage-errors.ts";

const dir = mkdtempSync(join(tmpdir(), "petbooks-storage-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }), TEARDOWN_TIMEOUT_MS);

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

// The same tests for both backends: a local folder, and a bucket on an S3-compatible server
// (s3rver on loopback, as CI runs it; docs/storage.md says how to point them at MinIO).
let s3: TestS3Server;
let vhost: TestS3Server;
beforeAll(async () => {
  s3 = await startTestS3Server();
  vhost = await startTestS3Server(VHOST_BUCKET, { virtualHosted: true });
}, SETUP_TIMEOUT_MS);
afterAll(async () => {
  await s3?.close();
  await vhost?.close();
}, TEARDOWN_TIMEOUT_MS);

/** A bucket named like a host under .localhost, for virtual-hosted style (see testing/s3.ts). */
const VHOST_BUCKET = "photos.vhost.localhost";
const vhostResolves = await Bun.dns.lookup(VHOST_BUCKET).then(
  () => true,
  () => false,
);

const BACKENDS: [name: string, make: () => PhotoStorage][] = [
  ["local folder", () => createLocalPhotoStorage(freshDir(), "http://x")],
  [
    "S3 bucket, path style",
    () => createS3PhotoStorage(createS3Client(s3.config), "http://x", silentLogger),
  ],
];
if (vhostResolves) {
  BACKENDS.push([
    "S3 bucket, virtual-hosted style",
    () => createS3PhotoStorage(createS3Client(vhost.config), "http://x", silentLogger),
  ]);
  test("virtual-hosted style names the bucket in the host: the key is photos/<name>", async () => {
    const storage = createS3PhotoStorage(createS3Client(vhost.config), "http://x", silentLogger);
    const name = storage.newFileName(PNG);
    await storage.save(name, patterned(10));
    // Where s3rver keeps an object's metadata: <folder>/<bucket>/<key>._S3rver_metadata.json.
    // Had the bucket also gone into the path, the key would start with the bucket's name. (Not
    // the object's own file: s3rver answers the PUT before its write stream has opened that.)
    const keyPath = (key: string) =>
      join(vhost.directory, VHOST_BUCKET, `${key}._S3rver_metadata.json`);
    expect(existsSync(keyPath(`photos/${name}`))).toBe(true);
    expect(existsSync(keyPath(`${VHOST_BUCKET}/photos/${name}`))).toBe(false);
  });
} else {
  test.skip(`S3 virtual-hosted style: ${VHOST_BUCKET} does not resolve here`, () => {});
}

const bytesOf = async (photo: StoredPhoto, range?: { start: number; end: number }) =>
  new Uint8Array(await new Response(photo.body(range)).arrayBuffer());

/** `n` bytes that differ from one offset to the next, so a misplaced range shows. */
const patterned = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) % 251);

/** A stream of `bytes` in chunks of `size`, as an upload arrives. */
const chunked = (bytes: Uint8Array, size: number) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (let at = 0; at < bytes.length; at += size)
        controller.enqueue(bytes.slice(at, at + size));
      controller.close();
    },
  });

describe.each(BACKENDS)("photo storage: %s", (_, make) => {
  test("a saved photo opens with its bytes, size, type and validators", async () => {
    const storage = make();
    const name = storage.newFileName(PNG);
    const bytes = patterned(1000);
    await storage.save(name, bytes);
    const photo = await storage.open(name);
    expect(photo).toMatchObject({ size: 1000, contentType: "image/png" });
    expect(photo?.etag).toMatch(/^"[^"]+"$/);
    expect(photo?.lastModified).toBeInstanceOf(Date);
    expect(await bytesOf(photo as StoredPhoto)).toEqual(bytes);
    // The validator names this version: opened again, the same.
    expect((await storage.open(name))?.etag).toBe(photo?.etag as string);
    expect(storage.url(name)).toBe(`http://x/photos/${name}`);
  });

  test("a streamed save larger than one S3 part arrives whole", async () => {
    const storage = make();
    const name = storage.newFileName({ extension: "jpg", contentType: "image/jpeg" });
    const bytes = patterned(12 * 1024 * 1024 + 17);
    await storage.save(name, chunked(bytes, 64 * 1024));
    const photo = (await storage.open(name)) as StoredPhoto;
    expect(photo.size).toBe(bytes.length);
    expect(photo.contentType).toBe("image/jpeg");
    expect(Bun.hash(await bytesOf(photo))).toBe(Bun.hash(bytes));
  }, 60_000);

  test("a byte range reads just those bytes", async () => {
    const storage = make();
    const name = storage.newFileName(PNG);
    const bytes = patterned(5000);
    await storage.save(name, bytes);
    const photo = (await storage.open(name)) as StoredPhoto;
    expect(await bytesOf(photo, { start: 100, end: 199 })).toEqual(bytes.slice(100, 200));
    expect(await bytesOf(photo, { start: 4990, end: 4999 })).toEqual(bytes.slice(4990));
  });

  test("served with conditional requests and ranges (RFC 9110)", async () => {
    const storage = make();
    const name = storage.newFileName(PNG);
    const bytes = patterned(2000);
    await storage.save(name, bytes);
    const photo = (await storage.open(name)) as StoredPhoto;
    const get = (headers: Record<string, string> = {}) =>
      photoResponse(photo, new Headers(headers), "req-1");
    // A body nobody reads is cancelled, as Bun does when a client goes away: an S3 download left
    // open would hold one of the client's connections.
    const statusOf = async (headers: Record<string, string>) => {
      const res = get(headers);
      await res.body?.cancel();
      return res.status;
    };

    const whole = get();
    expect(whole.status).toBe(200);
    expect(whole.headers.get("etag")).toBe(photo.etag);
    expect(whole.headers.get("last-modified")).toBe(photo.lastModified.toUTCString());
    expect(whole.headers.get("accept-ranges")).toBe("bytes");
    expect(whole.headers.get("content-length")).toBe("2000");
    expect(new Uint8Array(await whole.arrayBuffer())).toEqual(bytes);

    const cached = get({ "if-none-match": `"other", ${photo.etag}` });
    expect(cached.status).toBe(304);
    expect(cached.headers.get("etag")).toBe(photo.etag);
    expect(await cached.text()).toBe("");
    expect(await statusOf({ "if-none-match": `W/${photo.etag}` })).toBe(304);
    expect(await statusOf({ "if-none-match": '"other"' })).toBe(200);
    // Now is at or after the photo's time (a date later than now is invalid, RFC 9110 §13.1.3).
    const later = new Date().toUTCString();
    const future = new Date(Date.now() + 3_600_000).toUTCString();
    const earlier = new Date(photo.lastModified.getTime() - 60_000).toUTCString();
    expect(await statusOf({ "if-modified-since": later })).toBe(304);
    expect(await statusOf({ "if-modified-since": future })).toBe(200);
    expect(await statusOf({ "if-modified-since": earlier })).toBe(200);
    // If-None-Match wins over If-Modified-Since.
    expect(await statusOf({ "if-none-match": '"other"', "if-modified-since": later })).toBe(200);

    const part = get({ range: "bytes=10-19" });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe("bytes 10-19/2000");
    expect(part.headers.get("content-length")).toBe("10");
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(bytes.slice(10, 20));
    const tail = get({ range: "bytes=-5" });
    expect(tail.headers.get("content-range")).toBe("bytes 1995-1999/2000");
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(bytes.slice(1995));
    const open = get({ range: "bytes=1990-" });
    expect(new Uint8Array(await open.arrayBuffer())).toEqual(bytes.slice(1990));
    const clipped = get({ range: "bytes=1990-99999" });
    expect(clipped.headers.get("content-range")).toBe("bytes 1990-1999/2000");
    await clipped.body?.cancel();

    const outside = get({ range: "bytes=2000-2100" });
    expect(outside.status).toBe(416);
    expect(outside.headers.get("content-range")).toBe("bytes */2000");
    expect(outside.headers.get("content-type")).toBe("application/problem+json");
    expect(await outside.text()).toBe(
      '{"type":"about:blank","title":"Range Not Satisfiable","status":416,' +
        '"detail":"The photo has 2000 bytes: the range asked for is outside them.",' +
        '"code":"range_not_satisfiable","request_id":"req-1"}',
    );

    // HEAD: the same headers, and no body opened at all.
    const opened: unknown[] = [];
    const head = photoResponse(
      {
        ...photo,
        body: (range) => {
          opened.push(range);
          return photo.body(range);
        },
      },
      new Headers({ range: "bytes=0-9" }),
      "req-1",
      { head: true },
    );
    expect(head.status).toBe(206);
    expect(head.headers.get("content-length")).toBe("10");
    expect(head.body).toBeNull();
    expect(opened).toEqual([]);

    // Several ranges, or one that does not parse: the whole photo.
    expect(await statusOf({ range: "bytes=0-1,5-6" })).toBe(200);
    expect(await statusOf({ range: "pages=1" })).toBe(200);
    // If-Range: the range only while the tag still matches.
    expect(await statusOf({ range: "bytes=0-9", "if-range": photo.etag })).toBe(206);
    expect(await statusOf({ range: "bytes=0-9", "if-range": '"old"' })).toBe(200);
  });

  test("is ready when it can be used", async () => {
    await make().ready();
  });

  test("an unknown or malformed name opens nothing", async () => {
    const storage = make();
    expect(await storage.open(storage.newFileName(PNG))).toBeUndefined();
    for (const bad of ["../etc/passwd", "x.png", "", "AAAAAAAAAAAAAAAAAAAAAA.exe"]) {
      expect(await storage.open(bad)).toBeUndefined();
    }
  });

  test("removing twice is fine, and a removed photo is gone", async () => {
    const storage = make();
    const name = storage.newFileName(PNG);
    await storage.save(name, patterned(10));
    await storage.remove(name);
    await storage.remove(name);
    expect(await storage.open(name)).toBeUndefined();
  });
});

describe("S3 storage that cannot be reached", () => {
  // A port nothing listens on: connection refused at once.
  const down = () =>
    createS3PhotoStorage(
      createS3Client({ ...s3.config, endpoint: "http://127.0.0.1:9" }),
      "http://x",
      silentLogger,
    );

  test("a save fails as storage that cannot be written (503), without the secret", async () => {
    const err = await down()
      .save("AAAAAAAAAAAAAAAAAAAAAA.png", patterned(10))
      .catch((e) => e);
    expect(err).toBeInstanceOf(StorageUnwritableError);
    expect(String(err.message)).not.toContain(s3.config.secretAccessKey);
  });

  test("a streamed save fails the same way", async () => {
    const err = await down()
      .save("AAAAAAAAAAAAAAAAAAAAAA.png", chunked(patterned(100_000), 1000))
      .catch((e) => e);
    expect(err).toBeInstanceOf(StorageUnwritableError);
  });

  test("reading fails as a retryable 503, not a missing photo", async () => {
    const err = await down()
      .open("AAAAAAAAAAAAAAAAAAAAAA.png")
      .catch((e) => e);
    expect(err).toMatchObject({ code: "unavailable", retryAfterSeconds: 5 });
  });

  test("startup: a bucket out of reach fails with one line naming no secret", async () => {
    const { sleep, delays } = recordingSleep();
    const storage = createS3PhotoStorage(
      createS3Client({ ...s3.config, endpoint: "http://127.0.0.1:9" }),
      "http://x",
      silentLogger,
      { startupAttempts: 2, sleep },
    );
    const err = (await storage.ready().catch((e) => e)) as Error;
    expect(err.message).toStartWith("photo storage (S3_BUCKET) cannot be used: S3 ");
    expect(err.message).not.toContain(s3.config.secretAccessKey);
    expect(delays).toEqual([500]);
  });

  test("startup: wrong keys or no such bucket fail at once, without retrying", async () => {
    const attempts: unknown[] = [];
    const counting = { ...silentLogger, warn: (...args: unknown[]) => void attempts.push(args) };
    for (const config of [
      { ...s3.config, accessKeyId: "NOT-A-KEY", secretAccessKey: "not-the-secret" },
      { ...s3.config, bucket: "no-such-bucket" },
    ]) {
      const storage = createS3PhotoStorage(createS3Client(config), "http://x", counting, {
        startupAttempts: 5,
        sleep: recordingSleep().sleep,
      });
      const err = (await storage.ready().catch((e) => e)) as Error;
      expect(err.message).toMatch(
        /cannot be used: S3 (SignatureDoesNotMatch|InvalidAccessKeyId|NoSuchBucket)/,
      );
      expect(err.message).not.toContain("not-the-secret");
    }
    expect(attempts).toEqual([]);
  });

  test("a bucket that accepts connections and never answers: reads and removals time out", async () => {
    await withSilentBucket({ requestTimeoutMs: 200 }, async (storage) => {
      expect(await storage.open("AAAAAAAAAAAAAAAAAAAAAA.png").catch((e) => e)).toMatchObject({
        code: "unavailable",
      });
      const err = (await storage.remove("AAAAAAAAAAAAAAAAAAAAAA.png").catch((e) => e)) as Error;
      expect(err.message).toBe("S3 DELETE took longer than 200 ms");
    });
  });

  test("a bucket that accepts connections and never answers: saves fail in time and give their turn back", async () => {
    await withSilentBucket(
      { requestTimeoutMs: 200, writeTimeoutMs: 200, uploadsAtOnce: 1 },
      async (storage) => {
        const streamed = () => new Blob([pngBytes()]).stream();
        // One turn only: each save that gave up must have handed it back for the next to run.
        for (let i = 0; i < 3; i++) {
          const err = (await storage
            .save(`${"A".repeat(21)}${i}.png`, streamed())
            .catch((e) => e)) as Error;
          expect(err).toBeInstanceOf(StorageUnwritableError);
          expect(err.message).toMatch(
            /^S3 Timeout: S3 upload (part|completion) took longer than 200 ms$/,
          );
        }
        const small = (await storage
          .save("BBBBBBBBBBBBBBBBBBBBBB.png", pngBytes())
          .catch((e) => e)) as Error;
        expect(small.message).toBe("S3 Timeout: S3 PUT took longer than 200 ms");
      },
    );
  }, 30_000);

  test("a save waits for a turn no longer than the request timeout", async () => {
    await withSilentBucket(
      { requestTimeoutMs: 100, writeTimeoutMs: 60_000, uploadsAtOnce: 1 },
      async (storage) => {
        // Holds the only turn: a body that never ends.
        const holder = storage.save(
          "CCCCCCCCCCCCCCCCCCCCCC.png",
          new ReadableStream({ pull() {} }),
        );
        holder.catch(() => {});
        const err = (await storage
          .save("DDDDDDDDDDDDDDDDDDDDDD.png", new Blob([pngBytes()]).stream())
          .catch((e) => e)) as Error;
        expect(err).toBeInstanceOf(StorageUnwritableError);
        expect(err.message).toBe("S3 Timeout: a turn to upload to S3 took longer than 100 ms");
      },
    );
  }, 30_000);

  test("removing fails, for the caller to retry later", async () => {
    expect(
      await down()
        .remove("AAAAAAAAAAAAAAAAAAAAAA.png")
        .catch((e) => e),
    ).toBeInstanceOf(Error);
  });
});

describe("S3 storage startup check", () => {
  const s3Error = (code: string) =>
    Object.assign(new Error("an unexpected error has occurred"), { name: "S3Error", code });

  /** Starts the check with a client whose listing throws `errors`, one per call, then succeeds. */
  function check(errors: Error[], attempts = 5) {
    let calls = 0;
    const client = {
      async list() {
        calls++;
        const err = errors.shift();
        if (err) throw err;
        return { contents: [] };
      },
    } as unknown as S3Client;
    const { sleep, delays } = recordingSleep();
    const { logger, lines } = capturingLogger();
    const ready = createS3PhotoStorage(client, "http://x", logger, {
      startupAttempts: attempts,
      sleep,
    }).ready();
    return { ready, calls: () => calls, delays, lines };
  }

  test.each([
    "AccessDenied",
    "NoSuchBucket",
    "SignatureDoesNotMatch",
    "ERR_S3_MISSING_CREDENTIALS",
  ])("%s fails after one attempt, without a wait or a warning", async (code) => {
    const run = check([s3Error(code), s3Error(code)]);
    await expect(run.ready).rejects.toThrow(
      `photo storage (S3_BUCKET) cannot be used: S3 ${code}: an unexpected error has occurred`,
    );
    expect(run.calls()).toBe(1);
    expect(run.delays).toEqual([]);
    expect(run.lines).toEqual([]);
  });

  test("a bucket out of reach is tried again after 0.5 s, then 1 s, until it answers", async () => {
    const run = check([s3Error("ConnectionRefused"), s3Error("ConnectionRefused")]);
    await run.ready;
    expect(run.calls()).toBe(3);
    expect(run.delays).toEqual([500, 1000]);
    expect(run.lines).toEqual([
      expect.objectContaining({
        level: "warn",
        msg: "photo storage not reachable yet; retrying",
        attempt: 1,
        err: "S3 ConnectionRefused: an unexpected error has occurred",
      }),
      expect.objectContaining({ msg: "photo storage not reachable yet; retrying", attempt: 2 }),
    ]);
  });

  test("gives up after `attempts`, with the last error, warning once per retry", async () => {
    const errors = ["ConnectionRefused", "ConnectionClosed", "ConnectionRefused", "Timeout"];
    const run = check(errors.map(s3Error), 4);
    await expect(run.ready).rejects.toThrow(
      "photo storage (S3_BUCKET) cannot be used: S3 Timeout: an unexpected error has occurred",
    );
    expect(run.calls()).toBe(4);
    expect(run.delays).toEqual([500, 1000, 2000]);
    expect(run.lines.map((line) => line.attempt)).toEqual([1, 2, 3]);
  });
});

/**
 * `work` on S3 storage whose endpoint is a TCP listener that takes connections and says nothing,
 * with `options` for its timeouts.
 */
async function withSilentBucket(
  options: Parameters<typeof createS3PhotoStorage>[3],
  work: (storage: ReturnType<typeof createS3PhotoStorage>) => Promise<void>,
) {
  const silent = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: { data() {}, open() {} },
  });
  try {
    await work(
      createS3PhotoStorage(
        createS3Client({ ...s3.config, endpoint: `http://127.0.0.1:${silent.port}` }),
        "http://x",
        silentLogger,
        options,
      ),
    );
  } finally {
    silent.stop(true);
  }
}
