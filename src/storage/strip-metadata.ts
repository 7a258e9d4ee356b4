/**
 * Removes the metadata a phone writes into a photo (EXIF with GPS coordinates and camera serials,
 * XMP, IPTC, comments) from JPEG, PNG, WebP and GIF files, without decoding or re-encoding a
 * pixel: the file's own structure is walked and only metadata segments are left out. The EXIF
 * orientation is kept (as a minimal EXIF block holding that one tag), so photos stay upright.
 *
 * The file is read in slices and the result streamed, so a 10 MiB upload is never held whole.
 * Only what is known to draw the image is kept: a file the walk cannot follow (bytes where a
 * marker, chunk or block should start) is refused rather than stored with whatever metadata sits
 * past the damage, and so is one with no image data at all. A file cut short keeps its truncated
 * image data but not a truncated metadata segment. Bytes after the end of any format go (phones
 * append second images and videos to JPEGs; after a PNG, GIF or WebP they can hold anything).
 */
import { ValidationError } from "../errors.ts";
import type { ImageFormat } from "./image-format.ts";
import { pngChunk } from "./png.ts";

/** A range of the original file, or bytes written in place of something left out. */
type Piece = { from: number; to: number } | Uint8Array;

export interface StrippedPhoto {
  /** The size of the result, in bytes. */
  size: number;
  /**
   * What kinds of thing were left out, each named once, e.g. `["APP1 Exif", "COM"]`: for logs and
   * tests (a file of a million empty chunks makes a short list, not a log line of megabytes).
   */
  removed: string[];
  /** The result, read from the original file as it is consumed. */
  stream(): ReadableStream<Uint8Array>;
}

const WINDOW_BYTES = 256 * 1024;

/** What the uploader is told when a photo's structure cannot be followed. */
export const PHOTO_DAMAGED =
  "The photo is damaged or incomplete: its image data could not be read.";

/** A file whose metadata cannot be told apart from its image: refused (422), never stored. */
export class DamagedPhotoError extends ValidationError {
  constructor() {
    super(PHOTO_DAMAGED, [{ path: "/file", message: "is not a readable image" }]);
  }
}

/** Reads a Blob (a file on disk, or bytes in memory) at any offset, through one cached window. */
class Cursor {
  private windowAt = 0;
  private window = new Uint8Array(0);
  constructor(readonly blob: Blob) {}

  get size() {
    return this.blob.size;
  }

  /** Up to `length` bytes at `at` (fewer at the end of the file). */
  async bytes(at: number, length: number): Promise<Uint8Array> {
    const end = Math.min(at + length, this.size);
    if (at < this.windowAt || end > this.windowAt + this.window.length) {
      this.windowAt = at;
      this.window = await this.blob.slice(at, at + Math.max(length, WINDOW_BYTES)).bytes();
    }
    return this.window.subarray(at - this.windowAt, end - this.windowAt);
  }

  async byte(at: number): Promise<number | undefined> {
    return (await this.bytes(at, 1))[0];
  }
}

/** The kinds of thing left out, in the order first met. */
class Removed {
  readonly names = new Set<string>();
  push(name: string) {
    this.names.add(name);
  }
}

class Pieces {
  readonly list: Piece[] = [];
  keep(from: number, to: number) {
    if (to <= from) return;
    const last = this.list.at(-1);
    if (last && !(last instanceof Uint8Array) && last.to === from) last.to = to;
    else this.list.push({ from, to });
  }
  add(bytes: Uint8Array) {
    this.list.push(bytes);
  }
  get size() {
    return this.list.reduce((n, p) => n + (p instanceof Uint8Array ? p.length : p.to - p.from), 0);
  }
}

const ascii = (bytes: Uint8Array) => String.fromCharCode(...bytes);
const startsWith = (bytes: Uint8Array, text: string) =>
  bytes.length >= text.length && ascii(bytes.subarray(0, text.length)) === text;

/** EXIF orientations other than 1 (as stored) mean the viewer must turn or mirror the pixels. */
const TURNED = new Set([2, 3, 4, 5, 6, 7, 8]);

/** The Orientation tag (0x0112) of IFD0 in a TIFF structure (EXIF's body), if there is one. */
export function tiffOrientation(tiff: Uint8Array): number | undefined {
  if (tiff.length < 8) return undefined;
  const little = tiff[0] === 0x49 && tiff[1] === 0x49;
  if (!little && !(tiff[0] === 0x4d && tiff[1] === 0x4d)) return undefined;
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const ifd = view.getUint32(4, little);
  if (ifd + 2 > tiff.length) return undefined;
  const count = view.getUint16(ifd, little);
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + 12 * i;
    if (entry + 12 > tiff.length) return undefined;
    if (view.getUint16(entry, little) !== 0x0112) continue;
    // SHORT, one value, stored in the first two bytes of the value field.
    if (view.getUint16(entry + 2, little) !== 3) return undefined;
    const value = view.getUint16(entry + 8, little);
    return value >= 1 && value <= 8 ? value : undefined;
  }
  return undefined;
}

/** A TIFF structure holding nothing but an Orientation tag (big-endian, 26 bytes). */
export function orientationOnlyTiff(orientation: number): Uint8Array {
  const tiff = new Uint8Array(26);
  const view = new DataView(tiff.buffer);
  tiff.set([0x4d, 0x4d, 0x00, 0x2a]);
  view.setUint32(4, 8); // IFD0 right after the header
  view.setUint16(8, 1); // one entry
  view.setUint16(10, 0x0112);
  view.setUint16(12, 3); // SHORT
  view.setUint32(14, 1); // one value
  view.setUint16(18, orientation);
  view.setUint32(22, 0); // no next IFD
  return tiff;
}

const EXIF_HEADER = "Exif\0\0";

/** The orientation-only EXIF to write instead of `tiff`'s, or undefined when upright. */
function keptOrientation(tiff: Uint8Array): Uint8Array | undefined {
  const orientation = tiffOrientation(tiff);
  return orientation !== undefined && TURNED.has(orientation)
    ? orientationOnlyTiff(orientation)
    : undefined;
}

export async function stripMetadata(
  file: Blob,
  format: ImageFormat["extension"],
): Promise<StrippedPhoto> {
  const cursor = new Cursor(file);
  const removed = new Removed();
  const pieces = await WALKERS[format](cursor, removed);
  return {
    size: pieces.size,
    removed: [...removed.names],
    stream: () => streamPieces(file, pieces.list),
  };
}

const WALKERS: Record<
  ImageFormat["extension"],
  (cursor: Cursor, removed: Removed) => Promise<Pieces>
> = {
  jpg: walkJpeg,
  png: walkPng,
  gif: walkGif,
  webp: walkWebp,
};

// --- JPEG: markers and segments (ITU T.81, JFIF, EXIF 2.3, XMP part 3) ---

const APP_KEPT: [marker: number, prefix: string][] = [
  [0xe0, "JFIF\0"], // JFIF: pixel density, needed by some decoders
  [0xe2, "ICC_PROFILE\0"], // colours
  [0xee, "Adobe"], // tells the decoder how the colours were transformed
];

async function walkJpeg(cursor: Cursor, removed: Removed): Promise<Pieces> {
  const pieces = new Pieces();
  pieces.keep(0, 2); // SOI
  let at = 2;
  let scans = 0;
  let orientationKept = false;
  for (;;) {
    const head = await cursor.bytes(at, 4);
    if (head.length < 2) break; // the file ends (cut short: no EOI)
    // Anything but a marker here: the segments that follow cannot be told apart.
    if (head[0] !== 0xff) throw new DamagedPhotoError();
    const marker = head[1] as number;
    if (marker === 0xff) {
      // Fill bytes before a marker, not needed: a run is skipped in one go (a file of millions
      // of them must not cost an await each).
      const run = await cursor.bytes(at + 1, WINDOW_BYTES);
      let fill = 1;
      while (fill < run.length && run[fill] === 0xff) fill++;
      at += fill;
      continue;
    }
    if (marker === 0xd9) {
      // EOI. What phones append after it (MPF's second images with EXIF of their own, a motion
      // photo's video, which the XMP left out pointed to) goes too.
      if (scans === 0) throw new DamagedPhotoError();
      pieces.keep(at, at + 2);
      if (at + 2 < cursor.size) removed.push("data after EOI");
      return pieces;
    }
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      pieces.keep(at, at + 2);
      at += 2;
      continue;
    }
    if (head.length < 4) break;
    const length = ((head[2] as number) << 8) | (head[3] as number);
    const end = at + 2 + length;
    if (length < 2) throw new DamagedPhotoError();
    const metadata = (marker >= 0xe0 && marker <= 0xef) || marker === 0xfe;
    if (end > cursor.size) {
      // Cut short inside a segment: image tables or a scan header stay (as a truncated file
      // would show them), a metadata segment goes with nothing after it.
      if (metadata) {
        removed.push(`truncated ${jpegSegmentName(marker, await cursor.bytes(at + 4, 16))}`);
        at = cursor.size;
      }
      break;
    }
    if (marker === 0xda) {
      // SOS: the header, then the entropy-coded data up to the next marker.
      scans++;
      const next = await nextJpegMarker(cursor, end);
      pieces.keep(at, next);
      at = next;
      continue;
    }
    if (metadata) {
      const payload = await cursor.bytes(at + 4, length - 2);
      if (APP_KEPT.some(([m, prefix]) => m === marker && startsWith(payload, prefix))) {
        pieces.keep(at, end);
      } else {
        // Only the first EXIF block counts (as for viewers): one orientation is written at most.
        const exif = marker === 0xe1 && startsWith(payload, EXIF_HEADER) && !orientationKept;
        removed.push(jpegSegmentName(marker, payload));
        const orientation = exif ? keptOrientation(payload.subarray(6)) : undefined;
        if (exif) orientationKept = true;
        if (orientation) pieces.add(jpegApp1(orientation));
      }
      at = end;
      continue;
    }
    pieces.keep(at, end);
    at = end;
  }
  // Cut short: what is left is image data or a few bytes of a marker.
  if (scans === 0) throw new DamagedPhotoError();
  pieces.keep(at, cursor.size);
  return pieces;
}

const XMP_ID = "http://ns.adobe.com/xap/1.0/";

function jpegSegmentName(marker: number, payload: Uint8Array): string {
  if (marker === 0xfe) return "COM";
  const end = payload.indexOf(0);
  const id = startsWith(payload, XMP_ID)
    ? "XMP"
    : end > 0 && end <= 16
      ? ascii(payload.subarray(0, end))
      : "";
  return `APP${marker - 0xe0}${id ? ` ${id}` : ""}`;
}

function jpegApp1(tiff: Uint8Array): Uint8Array {
  const segment = new Uint8Array(4 + EXIF_HEADER.length + tiff.length);
  const length = segment.length - 2;
  segment.set([0xff, 0xe1, length >> 8, length & 0xff]);
  segment.set(new TextEncoder().encode(EXIF_HEADER), 4);
  segment.set(tiff, 4 + EXIF_HEADER.length);
  return segment;
}

/** The offset of the marker that ends entropy-coded data starting at `at` (or the file's end). */
async function nextJpegMarker(cursor: Cursor, at: number): Promise<number> {
  let pos = at;
  while (pos < cursor.size) {
    const window = await cursor.bytes(pos, WINDOW_BYTES);
    let i = window.indexOf(0xff);
    while (i >= 0) {
      const next = i + 1 < window.length ? window[i + 1] : await cursor.byte(pos + i + 1);
      if (next === undefined) return cursor.size;
      // FF00 is a data byte, FFD0-FFD7 restart markers stay inside the scan, FFFF is fill.
      if (next !== 0x00 && !(next >= 0xd0 && next <= 0xd7) && next !== 0xff) return pos + i;
      i = window.indexOf(0xff, i + 1);
    }
    pos += window.length;
  }
  return cursor.size;
}

// --- PNG: chunks (PNG 3rd edition) ---

/**
 * Ancillary chunks that say how to draw the image (colour, transparency, gamma, pixel size, APNG
 * frames); any other ancillary chunk (text, XMP in iTXt, tIME, EXIF, private chunks) goes. Critical
 * chunks (an upper-case first letter) always stay: a decoder must refuse a file without them.
 */
const PNG_KEPT = new Set([
  "tRNS",
  "cHRM",
  "gAMA",
  "iCCP",
  "sBIT",
  "sRGB",
  "cICP",
  "mDCV",
  "mDCv",
  "cLLI",
  "cLLi",
  "bKGD",
  "hIST",
  "pHYs",
  "sPLT",
  "acTL",
  "fcTL",
  "fdAT",
]);
const PNG_IMAGE_DATA = new Set(["IDAT", "fdAT"]);
const CHUNK_TYPE = /^[A-Za-z]{4}$/;

async function walkPng(cursor: Cursor, removed: Removed): Promise<Pieces> {
  const pieces = new Pieces();
  pieces.keep(0, 8);
  let at = 8;
  let images = 0;
  let orientationKept = false;
  for (;;) {
    const head = await cursor.bytes(at, 8);
    if (head.length < 8) break; // cut short (no IEND)
    const length = new DataView(head.buffer, head.byteOffset, 8).getUint32(0);
    const type = ascii(head.subarray(4, 8));
    // Not a chunk: a length before was wrong, and nothing after can be told apart.
    if (!CHUNK_TYPE.test(type)) throw new DamagedPhotoError();
    const end = at + 12 + length;
    const critical = (head[4] as number) < 0x61;
    if (type === "IDAT") images++;
    if (end > cursor.size) {
      // Cut short: truncated image data stays, a truncated anything-else goes.
      if (critical || PNG_IMAGE_DATA.has(type)) pieces.keep(at, cursor.size);
      else removed.push(`truncated ${type}`);
      break;
    }
    if (critical || PNG_KEPT.has(type)) {
      pieces.keep(at, end);
    } else {
      removed.push(type);
      if (type === "eXIf" && !orientationKept) {
        orientationKept = true;
        const orientation = keptOrientation(await cursor.bytes(at + 8, length));
        if (orientation) pieces.add(pngChunk("eXIf", orientation));
      }
    }
    at = end;
    if (type === "IEND") {
      if (at < cursor.size) removed.push("data after IEND");
      break;
    }
  }
  if (images === 0) throw new DamagedPhotoError();
  return pieces;
}

// --- GIF: blocks (GIF89a) ---

/** Application extensions that only make an animation loop. */
const GIF_APPS_KEPT = new Set(["NETSCAPE2.0", "ANIMEXTS1.0"]);

async function walkGif(cursor: Cursor, removed: Removed): Promise<Pieces> {
  const pieces = new Pieces();
  const screen = await cursor.bytes(0, 13);
  if (screen.length < 13) throw new DamagedPhotoError();
  const flags = screen[10] as number;
  let at = 13 + (flags & 0x80 ? 3 * 2 ** ((flags & 7) + 1) : 0);
  pieces.keep(0, Math.min(at, cursor.size));
  let images = 0;
  for (;;) {
    const introducer = await cursor.byte(at);
    if (introducer === undefined) break; // cut short (no trailer)
    if (introducer === 0x3b) {
      pieces.keep(at, at + 1); // the trailer; what follows it goes
      if (at + 1 < cursor.size) removed.push("data after the trailer");
      break;
    }
    if (introducer === 0x21) {
      const label = await cursor.byte(at + 1);
      const end = await skipSubBlocks(cursor, at + 2);
      if (end === undefined) {
        removed.push("truncated extension"); // cut short inside it: it goes, nothing follows
        break;
      }
      let keep = label === 0xf9 || label === 0x01; // graphic control, plain text: rendering
      let name = `extension 0x${(label ?? 0).toString(16)}`;
      if (label === 0xff) {
        const id = ascii(await cursor.bytes(at + 3, 11));
        keep = GIF_APPS_KEPT.has(id);
        name = `application ${id}`;
      } else if (label === 0xfe) {
        name = "comment";
      }
      if (keep) pieces.keep(at, end);
      else removed.push(name);
      at = end;
      continue;
    }
    if (introducer === 0x2c) {
      images++;
      const descriptor = await cursor.bytes(at, 10);
      const local = descriptor[9] ?? 0;
      const table = local & 0x80 ? 3 * 2 ** ((local & 7) + 1) : 0;
      // The LZW minimum code size, then the image data's sub-blocks.
      const end = await skipSubBlocks(cursor, at + 10 + table + 1);
      if (end === undefined) {
        pieces.keep(at, cursor.size); // cut short inside the image: what there is of it stays
        break;
      }
      pieces.keep(at, end);
      at = end;
      continue;
    }
    // Neither block nor trailer: what follows cannot be told apart.
    throw new DamagedPhotoError();
  }
  if (images === 0) throw new DamagedPhotoError();
  return pieces;
}

/** The offset after the sub-blocks starting at `at` (a length byte, that many bytes, … 0). */
async function skipSubBlocks(cursor: Cursor, at: number): Promise<number | undefined> {
  let pos = at;
  for (;;) {
    // A window at a time, walked without awaiting: sub-blocks may be one byte each.
    const window = await cursor.bytes(pos, WINDOW_BYTES);
    if (window.length === 0) return undefined;
    let i = 0;
    while (i < window.length) {
      const length = window[i] as number;
      if (length === 0) return pos + i + 1;
      i += 1 + length;
    }
    pos += i;
    if (pos > cursor.size) return undefined;
  }
}

// --- WebP: RIFF chunks (WebP container specification) ---

/** Chunks that draw the image; anything else (EXIF, XMP, unknown chunks) is left out. */
const WEBP_KEPT = new Set(["VP8 ", "VP8L", "VP8X", "ALPH", "ANIM", "ANMF", "ICCP"]);
/** Chunks holding pixels: a WebP with none of them shows nothing. */
const WEBP_IMAGES = new Set(["VP8 ", "VP8L", "ANMF"]);
const FOURCC = /^[\x20-\x7e]{4}$/;
const WEBP_IMAGE_HEADER_BYTES = 24;

/**
 * Whether an image chunk begins as one that holds pixels: a VP8 key frame (its start code), a
 * VP8L bitstream (its signature), an animation frame (its 16-byte header and a chunk header). An
 * empty or zeroed chunk under the right name shows nothing.
 */
function startsAnImage(fourcc: string, payload: Uint8Array): boolean {
  if (fourcc === "VP8 ") {
    return (
      payload.length >= 10 && payload[3] === 0x9d && payload[4] === 0x01 && payload[5] === 0x2a
    );
  }
  if (fourcc === "VP8L") return payload.length >= 5 && payload[0] === 0x2f;
  return payload.length >= 24;
}
const VP8X_EXIF = 0x08;
const VP8X_XMP = 0x04;

async function walkWebp(cursor: Cursor, removed: Removed): Promise<Pieces> {
  const pieces = new Pieces();
  const riff = await cursor.bytes(0, 12);
  const declared =
    riff.length >= 8 ? new DataView(riff.buffer, riff.byteOffset).getUint32(4, true) : 0;
  const riffEnd = Math.min(8 + declared, cursor.size);
  const header = new Uint8Array(riff.subarray(0, 12));
  pieces.add(header);
  let at = 12;
  let vp8x: Uint8Array | undefined;
  let exifKept = false;
  let exifSeen = false;
  let images = 0;
  while (at + 8 <= riffEnd) {
    const head = await cursor.bytes(at, 8);
    const fourcc = ascii(head.subarray(0, 4));
    // Not a chunk: a size before was wrong, and nothing after can be told apart.
    if (!FOURCC.test(fourcc)) throw new DamagedPhotoError();
    const length = new DataView(head.buffer, head.byteOffset, 8).getUint32(4, true);
    if (WEBP_IMAGES.has(fourcc)) {
      const payload = Math.min(length, riffEnd - (at + 8), WEBP_IMAGE_HEADER_BYTES);
      if (startsAnImage(fourcc, await cursor.bytes(at + 8, payload))) images++;
    }
    if (at + 8 + length > riffEnd) {
      // Cut short: truncated image data stays, a truncated anything-else goes.
      if (WEBP_KEPT.has(fourcc)) pieces.keep(at, riffEnd);
      else removed.push(`truncated ${fourcc.trim()}`);
      at = riffEnd;
      break;
    }
    // Odd sizes are padded to even; a writer that left out the last pad byte is forgiven.
    const chunkEnd = Math.min(at + 8 + length + (length & 1), riffEnd);
    if (fourcc === "VP8X" && length >= 10) {
      // Its flags say which metadata chunks follow: rewritten once they are known.
      vp8x = new Uint8Array(await cursor.bytes(at, chunkEnd - at));
      pieces.add(vp8x);
    } else if (WEBP_KEPT.has(fourcc)) {
      pieces.keep(at, chunkEnd);
    } else {
      removed.push(fourcc.trim());
      if (fourcc === "EXIF" && !exifSeen) {
        exifSeen = true;
        let tiff = await cursor.bytes(at + 8, length);
        if (startsWith(tiff, EXIF_HEADER)) tiff = tiff.subarray(EXIF_HEADER.length);
        const orientation = keptOrientation(tiff);
        if (orientation) {
          const chunk = new Uint8Array(8 + orientation.length);
          chunk.set(new TextEncoder().encode("EXIF"));
          new DataView(chunk.buffer).setUint32(4, orientation.length, true);
          chunk.set(orientation, 8);
          pieces.add(chunk); // 26 bytes: even, no padding
          exifKept = true;
        }
      }
    }
    at = chunkEnd;
  }
  if (images === 0) throw new DamagedPhotoError();
  // Fewer than 8 bytes: no chunk, not even a header of one.
  if (at < riffEnd) removed.push("partial chunk header");
  if (riffEnd < cursor.size) removed.push("data after RIFF");
  if (removed.names.size === 0) {
    // Nothing left out: the file as it came, header and all.
    const whole = new Pieces();
    whole.keep(0, cursor.size);
    return whole;
  }
  if (vp8x) {
    const flags = vp8x[8] as number;
    vp8x[8] = (flags & ~(VP8X_EXIF | VP8X_XMP)) | (exifKept ? VP8X_EXIF : 0);
  }
  // The RIFF size counts what follows it, up to the end of the last chunk.
  new DataView(header.buffer).setUint32(4, pieces.size - 8, true);
  return pieces;
}

// --- output ---

function streamPieces(file: Blob, pieces: Piece[]): ReadableStream<Uint8Array> {
  let index = 0;
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const piece = pieces[index];
      if (!piece) return controller.close();
      if (piece instanceof Uint8Array) {
        index++;
        if (piece.length > 0) controller.enqueue(piece);
        return;
      }
      const from = piece.from + offset;
      const to = Math.min(piece.to, from + WINDOW_BYTES);
      const bytes = await file.slice(from, to).bytes();
      offset += bytes.length;
      if (piece.from + offset >= piece.to || bytes.length === 0) {
        index++;
        offset = 0;
      }
      if (bytes.length > 0) controller.enqueue(bytes);
    },
  });
}
