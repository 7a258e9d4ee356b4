/** Fresh test data per call: no shared fixtures. */
import type { Book } from "../books/books.model.ts";
import type { NewPet } from "../pets/pets.model.ts";
import { pngBytes } from "../storage/png.ts";

export { pngBytes };

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

/** A book as the service answers it (Dune), under the given id, for fakes of the books service. */
export function storedBook(id: string): Book {
  return {
    id,
    title: "Dune",
    author: "Frank Herbert",
    published_on: "1965-08-01",
    created_at: "2026-01-02T03:04:05Z",
    updated_at: "2026-01-02T03:04:05Z",
  };
}

/**
 * The smallest files of each accepted format that uploads take: a signature and structure with
 * image data in it (a scan, an image block, a VP8 chunk), as the metadata stripper needs.
 */
export const IMAGE_HEADS = {
  jpeg: new Uint8Array([
    ...[0xff, 0xd8],
    ...[0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0], // APP0 JFIF
    ...[0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0, 0], // a scan header and one byte of it
    ...[0xff, 0xd9],
  ]),
  gif: new TextEncoder().encode(
    "GIF89a\x01\x00\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00;",
  ),
  webp: new Uint8Array([
    ...new TextEncoder().encode("RIFF"),
    ...[22, 0, 0, 0],
    ...new TextEncoder().encode("WEBPVP8 "),
    ...[10, 0, 0, 0],
    // A key frame's tag, its start code, then 1×1.
    ...[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 1, 0, 1, 0],
  ]),
};
