import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setBodyLimit } from "../http/parsers.ts";
import { makeTempDir } from "../testing/temp.ts";
import { until } from "../testing/until.ts";
import {
  discardInFlightUploads,
  discardUpload,
  MAX_TEXT_FIELD_BYTES,
  photoUploadBody,
  STALE_UPLOAD_MS,
  sweepStaleUploads,
} from "./photo-upload.ts";

const KiB = 1024;
const dir = makeTempDir("petbooks-upload-");
const parse = photoUploadBody({ dir });
const failure = (p: Promise<unknown>) => p.then(() => undefined).catch((e: unknown) => e);

/** A request whose body arrives in chunks of `chunkSize` bytes (a slow or chunked client). */
function streamedRequest(body: Uint8Array, contentType: string, chunkSize: number, limit?: number) {
  const request = new Request("http://localhost/pets/x/photo", {
    method: "POST",
    headers: { "content-type": contentType },
    body: new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < body.length; at += chunkSize) {
          controller.enqueue(body.slice(at, at + chunkSize));
        }
        controller.close();
      },
    }),
  });
  if (limit !== undefined) setBodyLimit(request, limit);
  return request;
}

async function formBytes(form: FormData) {
  const response = new Response(form);
  // Read before the body: Bun drops the header once the body is consumed.
  const type = response.headers.get("content-type") as string;
  return { bytes: new Uint8Array(await response.arrayBuffer()), type };
}

const patterned = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) % 256);

describe("photo upload parser", () => {
  test("reads a file part into a temporary file, and text parts as text", async () => {
    const form = new FormData();
    const photo = patterned(300 * KiB);
    form.append("note", "hello");
    form.append("file", new File([photo], "rex.jpg", { type: "image/jpeg" }));
    const { bytes, type } = await formBytes(form);
    const request = streamedRequest(bytes, type, 16 * KiB, 1024 * KiB);
    const fields = (await parse({ request })) as { note: string; file: Blob };
    expect(fields.note).toBe("hello");
    expect(fields.file).toBeInstanceOf(Blob);
    expect(fields.file.type).toBe("image/jpeg");
    expect(new Uint8Array(await fields.file.arrayBuffer())).toEqual(photo);
    expect(readdirSync(dir).length).toBeGreaterThan(0);
    await discardUpload(request);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("a boundary split across chunks at every position is still found", async () => {
    const form = new FormData();
    const photo = patterned(200);
    form.append("file", new File([photo], "a.png"));
    const { bytes, type } = await formBytes(form);
    for (const size of [1, 2, 3, 5, 7, 13, 64]) {
      const request = streamedRequest(bytes, type, size);
      const fields = (await parse({ request })) as { file: Blob };
      expect(new Uint8Array(await fields.file.arrayBuffer())).toEqual(photo);
      await discardUpload(request);
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  test("bytes that look like part of a boundary stay in the file", async () => {
    const boundary = "XyZ";
    // "--XyZ" without the CRLF before it, and CRLF--Xy cut short: content, not delimiters.
    const tricky = new TextEncoder().encode("a--XyZ\r\n--Xy\r\n-\r\n--X");
    const body = new Uint8Array([
      ...new TextEncoder().encode(
        `preamble\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n`,
      ),
      ...tricky,
      ...new TextEncoder().encode(`\r\n--${boundary}--\r\nepilogue`),
    ]);
    const type = `multipart/form-data; boundary=${boundary}`;
    for (const size of [1, 4, 1000]) {
      const request = streamedRequest(body, type, size);
      const fields = (await parse({ request })) as { file: Blob };
      expect(new Uint8Array(await fields.file.arrayBuffer())).toEqual(tricky);
      await discardUpload(request);
    }
  });

  test("a field given twice is a 422, and its temporary files are gone", async () => {
    const form = new FormData();
    form.append("file", new File(["a"], "a.png"));
    form.append("file", new File(["b"], "b.png"));
    const { bytes, type } = await formBytes(form);
    expect(await failure(parse({ request: streamedRequest(bytes, type, 100) }))).toMatchObject({
      code: "validation",
      fieldErrors: [{ path: "/file", message: "is given more than once" }],
    });
    expect(readdirSync(dir)).toEqual([]);
  });

  test("past the request's limit: 413, while it streams, nothing left behind", async () => {
    const form = new FormData();
    form.append("file", new File([patterned(64 * KiB)], "a.png"));
    const { bytes, type } = await formBytes(form);
    const err = await failure(parse({ request: streamedRequest(bytes, type, 4 * KiB, 16 * KiB) }));
    expect(err).toMatchObject({ code: "payload_too_large" });
    expect(readdirSync(dir)).toEqual([]);
    // Declared: refused before anything is read.
    const declared = new Request("http://localhost/", {
      method: "POST",
      headers: { "content-type": type, "content-length": String(bytes.length) },
      body: bytes,
    });
    setBodyLimit(declared, 16 * KiB);
    expect(await failure(parse({ request: declared }))).toMatchObject({
      code: "payload_too_large",
    });
  });

  test("a text field longer than the cap is refused", async () => {
    const form = new FormData();
    form.append("note", "x".repeat(MAX_TEXT_FIELD_BYTES + 1));
    const { bytes, type } = await formBytes(form);
    expect(await failure(parse({ request: streamedRequest(bytes, type, 8 * KiB) }))).toMatchObject({
      code: "validation",
    });
  });

  test("415 for another type, 400 for a body that is not multipart", async () => {
    const json = streamedRequest(new Uint8Array([123, 125]), "application/json", 10);
    expect(await failure(parse({ request: json }))).toMatchObject({
      code: "unsupported_media_type",
    });
    const garbage = new TextEncoder().encode("garbage");
    for (const type of ["multipart/form-data", "multipart/form-data; boundary=xyz"]) {
      expect(await failure(parse({ request: streamedRequest(garbage, type, 3) }))).toMatchObject({
        code: "bad_request",
      });
    }
    // A part without a name, and one cut short.
    const nameless = new TextEncoder().encode(
      "--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--",
    );
    expect(
      await failure(
        parse({ request: streamedRequest(nameless, "multipart/form-data; boundary=b", 5) }),
      ),
    ).toMatchObject({ code: "bad_request" });
    const cut = new TextEncoder().encode(
      '--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
    );
    expect(
      await failure(parse({ request: streamedRequest(cut, "multipart/form-data; boundary=b", 5) })),
    ).toMatchObject({ code: "bad_request" });
    expect(readdirSync(dir)).toEqual([]);
  });

  test("no fields at all parse to an empty form (the schema then says what is missing)", async () => {
    const { bytes, type } = await formBytes(new FormData());
    expect(await parse({ request: streamedRequest(bytes, type, 100) })).toEqual({});
  });

  test("files a crash left are swept at start, not those of uploads still running", async () => {
    const sweepDir = makeTempDir("petbooks-upload-sweep-");
    const old = `petbooks-upload-${"a".repeat(24)}`;
    const running = `petbooks-upload-${"b".repeat(24)}`;
    const other = "someone-elses-file";
    for (const name of [old, running, other]) writeFileSync(join(sweepDir, name), "x");
    const past = (Date.now() - STALE_UPLOAD_MS - 60_000) / 1000;
    utimesSync(join(sweepDir, old), past, past);
    utimesSync(join(sweepDir, other), past, past);
    expect(await sweepStaleUploads(sweepDir)).toBe(1);
    expect(readdirSync(sweepDir).sort()).toEqual([running, other].sort());
  });

  test("a shutdown removes the files of uploads still arriving", async () => {
    const form = new FormData();
    form.append("file", new File([patterned(64 * KiB)], "rex.jpg", { type: "image/jpeg" }));
    const { bytes, type } = await formBytes(form);
    let client: ReadableStreamDefaultController<Uint8Array> | undefined;
    const request = new Request("http://localhost/pets/x/photo", {
      method: "POST",
      headers: { "content-type": type },
      // Half the body, then nothing more: a client still sending when the server stops.
      body: new ReadableStream<Uint8Array>({
        start(controller) {
          client = controller;
          controller.enqueue(bytes.slice(0, bytes.length / 2));
        },
      }),
    });
    setBodyLimit(request, 1024 * KiB);
    const parsing = failure(parse({ request }));
    await until("the upload to reach its temporary file", () => readdirSync(dir).length === 1);
    expect(await discardInFlightUploads()).toBe(1);
    expect(readdirSync(dir)).toEqual([]);
    expect(await discardInFlightUploads()).toBe(0);
    // The connection goes with the process: the parser closes its file.
    client?.error(new Error("the connection closed"));
    expect(await parsing).toBeInstanceOf(Error);
  });

  test("discarding a request that spooled nothing is fine", async () => {
    await discardUpload(new Request("http://localhost/"));
    expect(existsSync(dir)).toBe(true);
  });
});

/** Mounts a tiny tmpfs on `dir`, where the system lets this process (root); says whether it did. */
const mountTiny = (dir: string) =>
  Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir], {
    stdout: "ignore",
    stderr: "ignore",
  }).success;
const unmount = (dir: string) => void Bun.spawnSync(["umount", dir]);

// Tried once on a folder of its own and unmounted at once: nothing stays mounted if the test
// below is filtered out.
const canMount = (() => {
  const probe = makeTempDir("petbooks-upload-probe-");
  const mounted = mountTiny(probe);
  if (mounted) unmount(probe);
  return mounted;
})();

describe.skipIf(!canMount)("a temporary folder that fills up (a 64 KiB tmpfs; needs root)", () => {
  test("is a 503 with Retry-After, not a bad request, and leaves nothing behind", async () => {
    const dir = makeTempDir("petbooks-upload-full-");
    expect(mountTiny(dir)).toBe(true);
    try {
      const form = new FormData();
      form.append("file", new File([patterned(200 * KiB)], "a.png"));
      const { bytes, type } = await formBytes(form);
      const parseFull = photoUploadBody({ dir });
      const err = await failure(parseFull({ request: streamedRequest(bytes, type, 16 * KiB) }));
      expect(err).toMatchObject({ code: "unavailable", retryAfterSeconds: 60 });
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      unmount(dir);
    }
  });
});
