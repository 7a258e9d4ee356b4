/**
 * Photos as users and attackers see them, against the binary, with both storage backends (the
 * local folder, and a bucket on s3rver): the same upload answers, the same stored bytes, the same
 * range and conditional answers. Each case here failed before its fix (see docs/storage.md).
 */

import { afterAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { pngBytes, pngChunk } from "../../src/storage/png.ts";
import {
  ADDRESS_TEXT,
  CAMERA_TEXT,
  contains,
  GPS_LATITUDE_BYTES,
  gifWithMetadata,
  jpegWithMetadata,
  pngWithMetadata,
  webpWithMetadata,
} from "../../src/testing/photo-fixtures.ts";
import { startTestS3Server } from "../../src/testing/s3.ts";
import { TEARDOWN_TIMEOUT_MS } from "../../src/testing/timeouts.ts";
import { type ContractServer, expectProblem, useContractServer } from "./harness.ts";

const s3 = await startTestS3Server("contract-photos");
afterAll(async () => {
  await s3.close();
  rmSync(s3.directory, { recursive: true, force: true });
}, 60_000);

/**
 * A bucket that lists and answers HEAD but fails every GET: at once (a 503 SlowDown), or after
 * 100 bytes of the body (`cut-` in the key), as an S3 going away between the two requests does.
 */
const FAKE_SECRET = "fake-s3-secret-never-logged-0123";
/** Ends the cut download (see "a body cut midway"). */
const cutDownload = Promise.withResolvers<void>();
const failingS3 = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch(req) {
    const url = new URL(req.url);
    if (req.method === "GET" && url.searchParams.has("prefix")) {
      return new Response(
        '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>',
        { headers: { "content-type": "application/xml" } },
      );
    }
    if (req.method === "HEAD") {
      const headers = {
        "content-length": "694",
        etag: '"abc"',
        "last-modified": new Date(0).toUTCString(),
      };
      return new Response(null, { headers });
    }
    if (url.pathname.includes("cut-")) {
      let sent = false;
      const body = new ReadableStream({
        async pull(controller) {
          if (sent) {
            // Once the client has the answer's head (the test says so), whatever the machine's
            // speed; no reason, so the test prints no stack.
            await cutDownload.promise;
            return controller.error(undefined);
          }
          sent = true;
          controller.enqueue(new Uint8Array(100));
        },
      });
      return new Response(body, { headers: { "content-length": "694" } });
    }
    return new Response(
      '<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>',
      { status: 503, headers: { "content-type": "application/xml" } },
    );
  },
});
afterAll(() => failingS3.stop(true), TEARDOWN_TIMEOUT_MS);

const failing = useContractServer({
  S3_BUCKET: "failing-bucket",
  S3_ENDPOINT: `http://127.0.0.1:${failingS3.port}`,
  S3_REGION: "us-east-1",
  S3_ACCESS_KEY_ID: "AKIAFAKEFAKEFAKE",
  S3_SECRET_ACCESS_KEY: FAKE_SECRET,
});

describe("a bucket that answers HEAD but fails the download", () => {
  test("a GET failing at once is a 503 with Retry-After, not a 200 cut short", async () => {
    const res = await fetch(`${failing.url}/photos/AAAAAAAAAAAAAAAAAAAAAA.jpg`);
    await expectProblem(res, 503);
    expect(res.headers.get("retry-after")).toBe("5");
  });

  test("a body cut midway aborts the response and logs one warning, no stack", async () => {
    const res = await fetch(`${failing.url}/photos/cut-AAAAAAAAAAAAAAAAAA.jpg`);
    expect(res.status).toBe(200);
    cutDownload.resolve();
    // The client sees a broken transfer, never a short body that looks whole.
    expect(
      await res.arrayBuffer().then(
        () => "whole",
        () => "cut",
      ),
    ).toBe("cut");
    const deadline = Date.now() + 30_000;
    while (!failing.logs().includes('"msg":"photo could not be read"') && Date.now() < deadline) {
      await Bun.sleep(50);
    }
    expect(failing.logs()).toContain('"msg":"photo could not be read"');
    expect(failing.logs()).not.toContain("at async pull");
    expect(failing.logs()).not.toContain(FAKE_SECRET);
  });
});

const backends: [string, ContractServer][] = [
  ["local", useContractServer()],
  ["s3", useContractServer(s3.env)],
];

const text = (s: string) => new TextEncoder().encode(s);
const join = (...parts: Uint8Array[]) => new Uint8Array(parts.flatMap((p) => [...p]));

async function newPet(server: ContractServer): Promise<string> {
  const res = await server.api("/pets", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "Rex", age: 3, type: "dog" }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

function upload(server: ContractServer, pet: string, bytes: Uint8Array) {
  const form = new FormData();
  form.append("file", new Blob([bytes as Uint8Array<ArrayBuffer>]), "photo");
  return server.api(`/pets/${pet}/photo`, { method: "POST", body: form });
}

/** Uploads `bytes` and reads the stored photo back through its URL. */
async function roundTrip(server: ContractServer, bytes: Uint8Array): Promise<Uint8Array> {
  const res = await upload(server, await newPet(server), bytes);
  const body = await res.text();
  if (res.status !== 201) throw new Error(`upload: ${res.status} ${body}`);
  const photo = await fetch((JSON.parse(body) as { url: string }).url);
  expect(photo.status).toBe(200);
  return new Uint8Array(await photo.arrayBuffer());
}

const leaks = (bytes: Uint8Array) =>
  contains(bytes, GPS_LATITUDE_BYTES) ||
  contains(bytes, CAMERA_TEXT) ||
  contains(bytes, ADDRESS_TEXT);

/** Bytes after each format's end that a phone or a polyglot maker could put there. */
const TAIL = text(`PK\x03\x04 ${ADDRESS_TEXT}`);

describe("what is stored is the same on both backends, and holds no metadata", () => {
  const cases: [string, () => Promise<Uint8Array> | Uint8Array][] = [
    ["JPEG with EXIF, XMP, IPTC and a comment", () => jpegWithMetadata(16, 8, 6)],
    ["PNG with eXIf, iTXt, tEXt", () => pngWithMetadata(16, 8, 6)],
    ["WebP with EXIF and XMP", () => webpWithMetadata(16, 8, 6)],
    ["GIF with a comment and XMP", () => gifWithMetadata()],
    ["PNG with bytes after IEND", () => join(pngBytes(), TAIL)],
    ["GIF with bytes after the trailer", () => join(gifWithMetadata(), TAIL)],
    ["WebP with bytes after the RIFF", async () => join(await webpWithMetadata(), TAIL)],
    [
      "PNG with a private ancillary chunk",
      () => {
        const png = pngBytes();
        return join(png.subarray(0, 33), pngChunk("prVt", text(ADDRESS_TEXT)), png.subarray(33));
      },
    ],
  ];
  for (const [name, make] of cases) {
    test(name, async () => {
      const bytes = await make();
      const [local, bucket] = await Promise.all(
        backends.map(([, server]) => roundTrip(server, bytes)),
      );
      expect(leaks(local as Uint8Array)).toBe(false);
      expect(bucket).toEqual(local as Uint8Array);
    });
  }
});

describe("a photo whose structure cannot be followed is refused (422), on both backends", () => {
  const damaged: [string, () => Promise<Uint8Array> | Uint8Array][] = [
    [
      "a JPEG whose EXIF segment claims more bytes than the file has",
      async () => {
        const jpeg = await jpegWithMetadata();
        jpeg.set([0xff, 0xff], 4);
        return jpeg;
      },
    ],
    [
      "a PNG whose eXIf length is wrong (decoders still show it)",
      async () => {
        const png = await pngWithMetadata();
        png.set([0x7f], 33);
        return png;
      },
    ],
    [
      "a GIF with a stray byte before its comment",
      () => {
        const gif = gifWithMetadata();
        return join(gif.subarray(0, 19), new Uint8Array([0]), gif.subarray(19));
      },
    ],
    [
      "a JPEG that is a comment holding HTML and nothing else",
      () =>
        join(
          new Uint8Array([0xff, 0xd8, 0xff, 0xfe, 0, 27]),
          text("<script>alert(1)</script>"),
          new Uint8Array([0xff, 0xd9]),
        ),
    ],
    ["three bytes of a JPEG", () => new Uint8Array([0xff, 0xd8, 0xff])],
  ];
  for (const [name, make] of damaged) {
    for (const [backend, server] of backends) {
      test(`${backend}: ${name}`, async () => {
        const res = await upload(server, await newPet(server), await make());
        const problem = await expectProblem(res, 422);
        expect(problem.detail).toContain("damaged");
      });
    }
  }
});

describe("ranges and validators answer the same on both backends", () => {
  for (const [backend, server] of backends) {
    test(`${backend}: single ranges are exact, others whole or 416`, async () => {
      const res = await upload(server, await newPet(server), await jpegWithMetadata(64, 64));
      expect(res.status).toBe(201);
      const { url } = (await res.json()) as { url: string };
      const whole = new Uint8Array(await (await fetch(url)).arrayBuffer());
      const size = whole.length;
      const get = (range: string) => fetch(url, { headers: { range } });
      for (const [range, start, end] of [
        ["bytes=0-0", 0, 0],
        ["bytes=-5", size - 5, size - 1],
        ["bytes=5-", 5, size - 1],
        ["bytes=0-99999999", 0, size - 1],
      ] as const) {
        const part = await get(range);
        expect(part.status).toBe(206);
        expect(part.headers.get("content-range")).toBe(`bytes ${start}-${end}/${size}`);
        expect(new Uint8Array(await part.arrayBuffer())).toEqual(whole.subarray(start, end + 1));
      }
      for (const range of ["bytes=0-1,3-4", "bytes=abc", "bytes=5-1"]) {
        const res = await get(range);
        expect(res.status).toBe(200);
        expect((await res.arrayBuffer()).byteLength).toBe(size);
      }
      for (const range of [`bytes=${size}-`, "bytes=-0"]) {
        const res = await get(range);
        await expectProblem(res, 416);
        expect(res.headers.get("content-range")).toBe(`bytes */${size}`);
      }
    });

    test(`${backend}: If-None-Match and If-Modified-Since give 304`, async () => {
      const res = await upload(server, await newPet(server), pngBytes());
      const { url } = (await res.json()) as { url: string };
      const first = await fetch(url);
      await first.arrayBuffer();
      const etag = first.headers.get("etag") as string;
      expect(etag).toMatch(/^"[^"]+"$/);
      const lastModified = first.headers.get("last-modified") as string;
      const conditions: Record<string, string>[] = [
        { "if-none-match": etag },
        { "if-none-match": `W/${etag}` },
        { "if-none-match": `"other", ${etag}` },
        { "if-none-match": "*" },
        { "if-modified-since": lastModified },
      ];
      for (const headers of conditions) {
        const res = await fetch(url, { headers });
        expect(res.status).toBe(304);
        expect(res.headers.get("etag")).toBe(etag);
      }
      const unmet: Record<string, string>[] = [
        { "if-none-match": '"other"' },
        // A date later than now is invalid (RFC 9110 §13.1.3): ignored, the photo is sent.
        { "if-modified-since": "Fri, 01 Jan 2100 00:00:00 GMT" },
      ];
      for (const headers of unmet) {
        const changed = await fetch(url, { headers });
        expect(changed.status).toBe(200);
        await changed.arrayBuffer();
      }
    });
  }
});

describe("multipart limits hold however the body arrives", () => {
  for (const [backend, server] of backends) {
    test(`${backend}: part headers past 16 KiB are refused in one chunk too`, async () => {
      const pet = await newPet(server);
      const boundary = "contract-boundary";
      const body = join(
        text(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n`),
        text(`X-Padding: ${"a".repeat(20 * 1024)}\r\n\r\n`),
        pngBytes(),
        text(`\r\n--${boundary}--\r\n`),
      );
      const res = await server.api(`/pets/${pet}/photo`, {
        method: "POST",
        headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
        body,
      });
      await expectProblem(res, 400);
    });
  }
});
