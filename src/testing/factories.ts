/** Fresh test data per call: no shared fixtures. */
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
