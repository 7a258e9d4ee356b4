import { describe, expect, test } from "bun:test";
import {
  ADDRESS_TEXT,
  CAMERA_TEXT,
  contains,
  GPS_LATITUDE_BYTES,
  gifWithMetadata,
  gpsExifTiff,
  jpegWithMetadata,
  pngWithMetadata,
  riffChunk,
  webpOf,
  webpWithMetadata,
} from "../testing/photo-fixtures.ts";
import { pngBytes, pngChunk } from "./png.ts";
import { DamagedPhotoError, stripMetadata, tiffOrientation } from "./strip-metadata.ts";

/** A GIF89a's header and screen (1×1, a global table of 2 colours), and one 1×1 image. */
const GIF_HEAD = [
  ...new TextEncoder().encode("GIF89a"),
  1,
  0,
  1,
  0,
  0x80,
  0,
  0,
  0,
  0,
  0,
  255,
  255,
  255,
];
const GIF_IMAGE = [0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0];

const strip = async (bytes: Uint8Array, format: "jpg" | "png" | "webp" | "gif") => {
  const stripped = await stripMetadata(new Blob([bytes as Uint8Array<ArrayBuffer>]), format);
  const out = new Uint8Array(await new Response(stripped.stream()).arrayBuffer());
  expect(out.length).toBe(stripped.size);
  return { out, removed: stripped.removed };
};

const dimensions = async (bytes: Uint8Array) => {
  // A full decode, not just the header: the pixels must still be readable.
  const image = new Bun.Image(bytes);
  await image.png().bytes();
  return { width: image.width, height: image.height };
};

const leaks = (bytes: Uint8Array) => ({
  gps: contains(bytes, GPS_LATITUDE_BYTES),
  camera: contains(bytes, CAMERA_TEXT),
  address: contains(bytes, ADDRESS_TEXT),
  xmp: contains(bytes, "GPSLatitude"),
});
const NONE = { gps: false, camera: false, address: false, xmp: false };
const ALL = { gps: true, camera: true, address: true, xmp: true };

describe("stripping photo metadata", () => {
  test("JPEG: EXIF with GPS, XMP, IPTC and the comment go; the image decodes the same", async () => {
    const original = await jpegWithMetadata(16, 8);
    expect(leaks(original)).toEqual(ALL);
    const { out, removed } = await strip(original, "jpg");
    expect(leaks(out)).toEqual(NONE);
    expect(removed).toEqual(["APP1 Exif", "APP1 XMP", "APP13 Photoshop 3.0", "COM"]);
    expect(await dimensions(out)).toEqual({ width: 16, height: 8 });
    expect(await dimensions(out)).toEqual(await dimensions(original));
  });

  test("JPEG: the orientation is kept, alone, so the photo still shows upright", async () => {
    // Orientation 6: turn 90° clockwise to view, so a 16×8 sensor image shows as 8×16.
    const original = await jpegWithMetadata(16, 8, 6);
    const { out } = await strip(original, "jpg");
    expect(leaks(out)).toEqual(NONE);
    expect(await dimensions(original)).toEqual({ width: 8, height: 16 });
    expect(await dimensions(out)).toEqual({ width: 8, height: 16 });
    // Only the minimal EXIF block is left: header, one entry, no GPS IFD.
    const app1 = out.indexOf(0xe1, 2);
    expect(out[app1 - 1]).toBe(0xff);
    expect(tiffOrientation(out.subarray(app1 + 9))).toBe(6);
  });

  test("PNG: eXIf, iTXt (XMP), tEXt and tIME go; the pixels are untouched", async () => {
    const original = await pngWithMetadata(16, 8);
    expect(leaks(original)).toEqual(ALL);
    const { out, removed } = await strip(original, "png");
    expect(leaks(out)).toEqual(NONE);
    expect(removed).toEqual(["eXIf", "iTXt", "tEXt", "tIME"]);
    expect(await dimensions(out)).toEqual({ width: 16, height: 8 });
    expect(await new Bun.Image(out).png().bytes()).toEqual(
      await new Bun.Image(original).png().bytes(),
    );
  });

  test("PNG: an orientation in eXIf is kept as an eXIf with only that tag", async () => {
    const { out } = await strip(await pngWithMetadata(16, 8, 8), "png");
    expect(leaks(out)).toEqual(NONE);
    const at = Buffer.from(out).indexOf("eXIf");
    expect(at).toBeGreaterThan(0);
    const length = new DataView(out.buffer, out.byteOffset + at - 4, 4).getUint32(0);
    expect(length).toBe(26);
    expect(tiffOrientation(out.subarray(at + 4, at + 4 + length))).toBe(8);
    expect(await dimensions(out)).toEqual({ width: 16, height: 8 });
  });

  test("WebP: EXIF and XMP chunks go, the VP8X flags and RIFF size follow", async () => {
    const original = await webpWithMetadata(16, 8);
    expect(leaks(original)).toEqual(ALL);
    const { out, removed } = await strip(original, "webp");
    expect(leaks(out)).toEqual(NONE);
    expect(removed).toEqual(["EXIF", "XMP"]);
    const view = new DataView(out.buffer, out.byteOffset);
    expect(view.getUint32(4, true)).toBe(out.length - 8);
    expect((out[20] ?? 0) & 0x0c).toBe(0); // VP8X: neither EXIF nor XMP any more
    expect(await dimensions(out)).toEqual({ width: 16, height: 8 });
  });

  test("WebP: an orientation is kept in an EXIF chunk of its own", async () => {
    const { out } = await strip(await webpWithMetadata(16, 8, 3), "webp");
    expect(leaks(out)).toEqual(NONE);
    expect((out[20] ?? 0) & 0x0c).toBe(0x08);
    const at = Buffer.from(out).indexOf("EXIF");
    expect(tiffOrientation(out.subarray(at + 8, at + 8 + 26))).toBe(3);
    expect(new DataView(out.buffer, out.byteOffset).getUint32(4, true)).toBe(out.length - 8);
    expect(await dimensions(out)).toEqual({ width: 16, height: 8 });
  });

  test("GIF: the comment and XMP go, the loop and the image stay", async () => {
    const original = gifWithMetadata();
    expect(contains(original, ADDRESS_TEXT)).toBe(true);
    const { out, removed } = await strip(original, "gif");
    expect(contains(out, ADDRESS_TEXT)).toBe(false);
    expect(contains(out, "GPSLatitude")).toBe(false);
    expect(contains(out, "NETSCAPE2.0")).toBe(true);
    expect(removed).toEqual(["comment", "application XMP DataXMP"]);
    expect(await dimensions(out)).toEqual({ width: 1, height: 1 });
  });

  test.each([
    ["png", pngBytes([9, 9, 9], 4)],
    // 1×1, a global table of 2 colours, one image, the trailer.
    ["gif", new Uint8Array([...GIF_HEAD, ...GIF_IMAGE, 0x3b])],
  ] as ["png" | "gif", Uint8Array<ArrayBuffer>][])(
    "a %s without metadata comes out byte for byte",
    async (format, bytes) => {
      const { out, removed } = await strip(bytes, format);
      expect(removed).toEqual([]);
      expect(out).toEqual(bytes);
    },
  );

  test("bytes after the end of a PNG, GIF or WebP go, as after a JPEG's", async () => {
    const tail = new TextEncoder().encode(`PK\x03\x04 ${ADDRESS_TEXT}`);
    for (const [format, bytes] of [
      ["png", pngBytes()],
      ["gif", new Uint8Array([...GIF_HEAD, ...GIF_IMAGE, 0x3b])],
      ["webp", await webpWithMetadata()],
    ] as const) {
      const stripped = await strip(new Uint8Array([...bytes, ...tail]), format);
      expect(contains(stripped.out, ADDRESS_TEXT)).toBe(false);
      expect(stripped.removed.at(-1)).toMatch(/^data after/);
      await dimensions(stripped.out);
    }
  });

  test("a damaged structure is refused, never stored with the metadata after the damage", async () => {
    const jpeg = await jpegWithMetadata();
    const badLength = jpeg.slice();
    badLength.set([0xff, 0xff], 4); // the EXIF segment's length runs past the end
    const notAMarker = new Uint8Array([...jpeg.subarray(0, 2), 0x00, ...jpeg.subarray(2)]);
    const png = await pngWithMetadata();
    const pngBadLength = png.slice();
    pngBadLength.set([0x00, 0x00, 0x00, 0x01], 33); // eXIf's length: the walk lands mid-chunk
    const gif = gifWithMetadata();
    const gifJunk = new Uint8Array([...gif.subarray(0, 19), 0x00, ...gif.subarray(19)]);
    const cases: [Uint8Array, "jpg" | "png" | "gif" | "webp"][] = [
      [badLength, "jpg"],
      [notAMarker, "jpg"],
      [pngBadLength, "png"],
      [gifJunk, "gif"],
      // No image data at all: a comment and nothing else, or a bare header.
      [new Uint8Array([0xff, 0xd8, 0xff, 0xfe, 0, 6, 0x3c, 0x62, 0x3e, 0x21, 0xff, 0xd9]), "jpg"],
      [new Uint8Array([0xff, 0xd8, 0xff]), "jpg"],
      [new Uint8Array([...GIF_HEAD, 0x3b]), "gif"],
      // WebP image chunks under the right names with nothing in them: empty, or zeroes.
      [webpOf(riffChunk("VP8 ", new Uint8Array(0))), "webp"],
      [webpOf(riffChunk("VP8 ", new Uint8Array(20))), "webp"],
      [webpOf(riffChunk("VP8L", new Uint8Array(20))), "webp"],
      [webpOf(riffChunk("ANMF", new Uint8Array(8))), "webp"],
    ];
    for (const [bytes, format] of cases) {
      const refused = await stripMetadata(new Blob([bytes as Uint8Array<ArrayBuffer>]), format)
        .then(() => undefined)
        .catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(DamagedPhotoError);
    }
  });

  test("a file cut short keeps its image data, not a metadata segment cut short", async () => {
    const jpeg = await jpegWithMetadata();
    // Cut inside the scan: what there is of the image stays, the metadata before it goes.
    const cutScan = jpeg.subarray(0, jpeg.length - 10);
    const scan = await strip(cutScan, "jpg");
    expect(leaks(scan.out)).toEqual(NONE);
    expect(scan.out.subarray(-20)).toEqual(cutScan.subarray(-20));
    // A PNG cut inside a trailing text chunk: the chunk goes, the image stays whole.
    const png = pngBytes();
    const idatEnd = png.length - 12;
    const text = new TextEncoder().encode(`Comment\0${ADDRESS_TEXT}`);
    const withText = new Uint8Array([
      ...png.subarray(0, idatEnd),
      ...pngChunk("tEXt", text).subarray(0, 20),
    ]);
    const cut = await strip(withText, "png");
    expect(cut.removed).toEqual(["truncated tEXt"]);
    expect(cut.out).toEqual(new Uint8Array(png.subarray(0, idatEnd)));
  });

  test("PNG: private and unknown ancillary chunks go, colour and transparency stay", async () => {
    const png = pngBytes();
    const withChunks = new Uint8Array([
      ...png.subarray(0, 33),
      ...pngChunk("gAMA", new Uint8Array([0, 0, 0xb1, 0x8f])),
      ...pngChunk("prVt", new TextEncoder().encode(ADDRESS_TEXT)),
      ...pngChunk("caBX", new TextEncoder().encode(CAMERA_TEXT)),
      ...png.subarray(33),
    ]);
    const { out, removed } = await strip(withChunks, "png");
    expect(removed).toEqual(["prVt", "caBX"]);
    expect(contains(out, "gAMA")).toBe(true);
    expect(leaks(out)).toEqual(NONE);
    await dimensions(out);
  });

  test("what was left out names each kind once, however many there were", async () => {
    const png = pngBytes();
    const empty = pngChunk("zzZz", new Uint8Array());
    const many = new Uint8Array([
      ...png.subarray(0, 33),
      ...Array.from({ length: 10_000 }, () => [...empty]).flat(),
      ...png.subarray(33),
    ]);
    const { out, removed } = await strip(many, "png");
    expect(removed).toEqual(["zzZz"]);
    expect(out).toEqual(new Uint8Array(png));
  });

  test("fill bytes before a marker and one-byte GIF sub-blocks are walked, in runs", async () => {
    const jpeg = await jpegWithMetadata(16, 8);
    const filled = new Uint8Array([
      ...jpeg.subarray(0, 2),
      ...new Uint8Array(300_000).fill(0xff),
      ...jpeg.subarray(2),
    ]);
    const fromFilled = await strip(filled, "jpg");
    expect(fromFilled.out).toEqual((await strip(jpeg, "jpg")).out);
    const gif = gifWithMetadata();
    const comment = [0x21, 0xfe, ...Array.from({ length: 200_000 }, () => [1, 0x41]).flat(), 0];
    const padded = new Uint8Array([...gif.subarray(0, 19), ...comment, ...gif.subarray(19)]);
    const fromPadded = await strip(padded, "gif");
    expect(fromPadded.out).toEqual((await strip(gif, "gif")).out);
    expect(await dimensions(fromPadded.out)).toEqual({ width: 1, height: 1 });
  });

  test("only the first EXIF block's orientation is kept, once", async () => {
    const jpeg = await jpegWithMetadata(16, 8, 6);
    const exif = new Uint8Array([...new TextEncoder().encode("Exif\0\0"), ...gpsExifTiff(3)]);
    const second = new Uint8Array([
      0xff,
      0xe1,
      (exif.length + 2) >> 8,
      (exif.length + 2) & 0xff,
      ...exif,
    ]);
    const twice = new Uint8Array([...jpeg.subarray(0, 2), ...second, ...jpeg.subarray(2)]);
    const { out } = await strip(twice, "jpg");
    expect(leaks(out)).toEqual(NONE);
    expect(Buffer.from(out).indexOf(Buffer.from("Exif\0\0"))).toBe(
      Buffer.from(out).lastIndexOf(Buffer.from("Exif\0\0")),
    );
    expect(await dimensions(out)).toEqual({ width: 16, height: 8 }); // orientation 3: a half turn
  });

  test("what a phone appends after a JPEG's end (a second image with its EXIF) goes", async () => {
    const first = await jpegWithMetadata(16, 8);
    const second = await jpegWithMetadata(4, 4);
    const { out, removed } = await strip(new Uint8Array([...first, ...second]), "jpg");
    expect(leaks(out)).toEqual(NONE);
    expect(removed.at(-1)).toBe("data after EOI");
    expect(out.subarray(-2)).toEqual(new Uint8Array([0xff, 0xd9]));
    expect(await dimensions(out)).toEqual({ width: 16, height: 8 });
  });

  test("a large file is streamed in slices, scans and restart markers whole", async () => {
    // A 3 MiB scan (several read windows) with stuffed FF00 bytes and restart markers, which
    // are data, between an EXIF block with GPS and the end.
    const scan = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i % 251 === 250 ? 0xff : i % 200));
    for (let i = 0; i < scan.length - 1; i++) {
      if (scan[i] === 0xff) scan[i + 1] = i % 2 ? 0x00 : 0xd3;
    }
    const exif = new Uint8Array([...new TextEncoder().encode("Exif\0\0"), ...gpsExifTiff()]);
    const head = new Uint8Array([
      ...[0xff, 0xd8],
      ...[0xff, 0xe1, (exif.length + 2) >> 8, (exif.length + 2) & 0xff],
      ...exif,
      ...[0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0],
    ]);
    const jpeg = new Uint8Array(head.length + scan.length + 2);
    jpeg.set(head);
    jpeg.set(scan, head.length);
    jpeg.set([0xff, 0xd9], head.length + scan.length);
    const { out, removed } = await strip(jpeg, "jpg");
    expect(removed).toEqual(["APP1 Exif"]);
    expect(leaks(out).gps).toBe(false);
    expect(out.length).toBe(jpeg.length - 4 - exif.length);
    expect(Bun.hash(out.subarray(12, -2))).toBe(Bun.hash(scan));
  });
});
