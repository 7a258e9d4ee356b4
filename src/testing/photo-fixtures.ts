/**
 * Real photos carrying what a phone writes into them (EXIF with GPS coordinates and the camera,
 * XMP, IPTC, comments), made in code: the pixels are encoded by Bun.Image, the metadata is
 * written into each format's own structure here, byte by byte.
 */
import { pngBytes, pngChunk } from "../storage/png.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** Bytes that only the GPS block holds: 51°30'26.00" as EXIF rationals (little-endian). */
export const GPS_LATITUDE_BYTES = new Uint8Array([
  ...[51, 0, 0, 0, 1, 0, 0, 0],
  ...[30, 0, 0, 0, 1, 0, 0, 0],
  ...[0x28, 0x0a, 0, 0, 100, 0, 0, 0],
]);
/** The camera's make and serial, in EXIF. */
export const CAMERA_TEXT = "PetCam SN-4242-0001";
/** What the XMP packet, the comments and the IPTC block say: an address. */
export const ADDRESS_TEXT = "12 Home Street, Springfield";

/**
 * An EXIF TIFF block (little-endian) with the camera's make, an Orientation when given, and a GPS
 * IFD with latitude and longitude.
 */
export function gpsExifTiff(orientation?: number): Uint8Array {
  const make = text(`${CAMERA_TEXT}\0`);
  const entries0 = orientation === undefined ? 2 : 3;
  const ifd0At = 8;
  const ifd0Size = 2 + 12 * entries0 + 4;
  const makeAt = ifd0At + ifd0Size;
  const gpsAt = makeAt + make.length + (make.length % 2);
  const gpsEntries = 4;
  const gpsSize = 2 + 12 * gpsEntries + 4;
  const latAt = gpsAt + gpsSize;
  const lonAt = latAt + 24;
  const out = new Uint8Array(lonAt + 24);
  const view = new DataView(out.buffer);
  out.set(text("II*\0"));
  view.setUint32(4, ifd0At, true);
  const entry = (
    at: number,
    tag: number,
    type: number,
    count: number,
    value: number | number[],
  ) => {
    view.setUint16(at, tag, true);
    view.setUint16(at + 2, type, true);
    view.setUint32(at + 4, count, true);
    if (Array.isArray(value)) out.set(value, at + 8);
    else if (type === 3) view.setUint16(at + 8, value, true);
    else view.setUint32(at + 8, value, true);
  };
  view.setUint16(ifd0At, entries0, true);
  let at = ifd0At + 2;
  entry(at, 0x010f, 2, make.length, makeAt); // Make (ASCII, at an offset)
  at += 12;
  if (orientation !== undefined) {
    entry(at, 0x0112, 3, 1, orientation);
    at += 12;
  }
  entry(at, 0x8825, 4, 1, gpsAt); // the GPS IFD
  out.set(make, makeAt);
  view.setUint16(gpsAt, gpsEntries, true);
  entry(gpsAt + 2, 0x0001, 2, 2, [0x4e, 0, 0, 0]); // GPSLatitudeRef "N"
  entry(gpsAt + 14, 0x0002, 5, 3, latAt); // GPSLatitude
  entry(gpsAt + 26, 0x0003, 2, 2, [0x57, 0, 0, 0]); // GPSLongitudeRef "W"
  entry(gpsAt + 38, 0x0004, 5, 3, lonAt); // GPSLongitude
  out.set(GPS_LATITUDE_BYTES, latAt);
  out.set([0, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0x10, 0x0e, 0, 0, 100, 0, 0, 0], lonAt);
  return out;
}

export const XMP_PACKET = text(
  '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">' +
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description ' +
    'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="51,30.43N" ' +
    `xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/" Iptc4xmpCore:Location="${ADDRESS_TEXT}"/>` +
    '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>',
);

/** A `width`×`height` picture (two colours, so a turn shows) as PNG, encoded by Bun.Image. */
async function picture(format: "jpeg" | "png" | "webp", width: number, height: number) {
  const square = pngBytes([200, 40, 40], Math.max(width, height));
  const image = new Bun.Image(square).resize(width, height);
  if (format === "jpeg") return image.jpeg({ quality: 90 }).bytes();
  if (format === "webp") return image.webp({ lossless: true }).bytes();
  return image.png().bytes();
}

const u16be = (n: number) => [n >> 8, n & 0xff];

function jpegSegment(marker: number, payload: Uint8Array): Uint8Array {
  return new Uint8Array([0xff, marker, ...u16be(payload.length + 2), ...payload]);
}

const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};

/** A JPEG with EXIF (GPS, camera, `orientation`), XMP, IPTC (APP13) and a comment. */
export async function jpegWithMetadata(width = 16, height = 8, orientation?: number) {
  const jpeg = await picture("jpeg", width, height);
  // Photoshop IRB with an IPTC record: 2:92 (sub-location) holding the address.
  const iptc = concat(
    text("\x1c\x02\x5c"),
    new Uint8Array(u16be(ADDRESS_TEXT.length)),
    text(ADDRESS_TEXT),
  );
  const irb = concat(
    text("Photoshop 3.0\x008BIM"),
    new Uint8Array([0x04, 0x04, 0, 0, 0, 0, 0, iptc.length]),
    iptc,
    iptc.length % 2 ? new Uint8Array(1) : new Uint8Array(0),
  );
  return concat(
    jpeg.subarray(0, 2),
    jpegSegment(0xe1, concat(text("Exif\0\0"), gpsExifTiff(orientation))),
    jpegSegment(0xe1, concat(text("http://ns.adobe.com/xap/1.0/\0"), XMP_PACKET)),
    jpegSegment(0xed, irb),
    jpegSegment(0xfe, text(`taken at ${ADDRESS_TEXT}`)),
    jpeg.subarray(2),
  );
}

/** A PNG with eXIf (GPS, camera, `orientation`), an XMP iTXt, a tEXt comment and tIME. */
export async function pngWithMetadata(width = 16, height = 8, orientation?: number) {
  const png = await picture("png", width, height);
  const afterHeader = 8 + 25; // signature, IHDR
  const itxt = concat(text("XML:com.adobe.xmp\0\0\0\0\0"), XMP_PACKET);
  return concat(
    png.subarray(0, afterHeader),
    pngChunk("eXIf", gpsExifTiff(orientation)),
    pngChunk("iTXt", itxt),
    pngChunk("tEXt", text(`Comment\0taken at ${ADDRESS_TEXT}`)),
    pngChunk("tIME", new Uint8Array([0x07, 0xea, 12, 1, 10, 0, 0])),
    png.subarray(afterHeader),
  );
}

export function riffChunk(fourcc: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + data.length + (data.length % 2));
  out.set(text(fourcc));
  new DataView(out.buffer).setUint32(4, data.length, true);
  out.set(data, 8);
  return out;
}

/** An extended WebP (VP8X) with EXIF (GPS, camera, `orientation`) and XMP chunks. */
export async function webpWithMetadata(width = 16, height = 8, orientation?: number) {
  const simple = await picture("webp", width, height);
  const image = simple.subarray(12); // the VP8L (or VP8) chunk
  const vp8x = new Uint8Array(10);
  vp8x[0] = 0x08 | 0x04; // EXIF and XMP follow
  vp8x.set([(width - 1) & 0xff, ((width - 1) >> 8) & 0xff, (width - 1) >> 16], 4);
  vp8x.set([(height - 1) & 0xff, ((height - 1) >> 8) & 0xff, (height - 1) >> 16], 7);
  return webpOf(
    riffChunk("VP8X", vp8x),
    image,
    riffChunk("EXIF", gpsExifTiff(orientation)),
    riffChunk("XMP ", XMP_PACKET),
  );
}

/** A WebP file of these chunks: the RIFF header, its size, `WEBP`, then the chunks. */
export function webpOf(...chunks: Uint8Array[]): Uint8Array {
  const body = concat(text("WEBP"), ...chunks);
  const header = new Uint8Array(8);
  header.set(text("RIFF"));
  new DataView(header.buffer).setUint32(4, body.length, true);
  return concat(header, body);
}

function gifSubBlocks(data: Uint8Array): Uint8Array {
  const parts: number[] = [];
  for (let at = 0; at < data.length; at += 255) {
    const block = data.subarray(at, at + 255);
    parts.push(block.length, ...block);
  }
  parts.push(0);
  return new Uint8Array(parts);
}

/**
 * A 1×1 GIF89a that loops (NETSCAPE2.0), with a comment and an XMP application extension (which
 * the XMP spec writes as raw bytes plus a 258-byte "magic trailer"; as sub-blocks here).
 */
export function gifWithMetadata(): Uint8Array {
  return concat(
    text("GIF89a"),
    new Uint8Array([1, 0, 1, 0, 0x80, 0, 0]), // 1×1, a global table of 2 colours
    new Uint8Array([0, 0, 0, 255, 255, 255]),
    new Uint8Array([0x21, 0xff, 11]),
    text("NETSCAPE2.0"),
    new Uint8Array([3, 1, 0, 0, 0]),
    new Uint8Array([0x21, 0xfe]),
    gifSubBlocks(text(`taken at ${ADDRESS_TEXT}`)),
    new Uint8Array([0x21, 0xff, 11]),
    text("XMP DataXMP"),
    gifSubBlocks(XMP_PACKET),
    new Uint8Array([0x21, 0xf9, 4, 1, 0, 0, 0, 0]), // graphic control: colour 0 transparent
    new Uint8Array([0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0]), // the image: 1×1 at 0,0
    new Uint8Array([2, 2, 0x44, 0x01, 0]), // its LZW data
    text(";"),
  );
}

/** Whether `needle` occurs in `haystack`. */
export function contains(haystack: Uint8Array, needle: Uint8Array | string): boolean {
  const bytes = typeof needle === "string" ? text(needle) : needle;
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).includes(
    Buffer.from(bytes),
  );
}
