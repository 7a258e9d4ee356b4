/** Fresh test data per call: no shared fixtures. */
import { deflateSync } from "node:zlib";
import type { NewPet } from "../pets/pets.model.ts";

let counter = 0;

export function newPet(overrides: Partial<NewPet> = {}): NewPet {
  counter += 1;
  return {
    name: `pet-${counter}`,
    age: counter % 20,
    type: counter % 2 === 0 ? "dog" : "cat",
    ...overrides,
  };
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = (crcTable[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const body = new Uint8Array([...new TextEncoder().encode(type), ...data]);
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(body, 4);
  view.setUint32(8 + data.length, crc32(body));
  return out;
}

/** A real, valid 1x1 PNG of the given colour. */
export function pngBytes(rgb: [number, number, number] = [255, 0, 0]): Uint8Array {
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, 1);
  view.setUint32(4, 1);
  header.set([8, 2, 0, 0, 0], 8);
  const pixels = deflateSync(new Uint8Array([0, ...rgb]));
  return new Uint8Array([
    ...[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    ...pngChunk("IHDR", header),
    ...pngChunk("IDAT", pixels),
    ...pngChunk("IEND", new Uint8Array()),
  ]);
}

/** Leading bytes of each accepted format, padded: enough for format detection. */
export const IMAGE_HEADS = {
  jpeg: new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1]),
  gif: new TextEncoder().encode("GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
  webp: new Uint8Array([
    ...new TextEncoder().encode("RIFF"),
    26,
    0,
    0,
    0,
    ...new TextEncoder().encode("WEBPVP8 "),
    0,
    0,
    0,
    0,
  ]),
};
