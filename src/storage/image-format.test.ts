import { describe, expect, test } from "bun:test";
import { IMAGE_HEADS, pngBytes } from "../testing/factories.ts";
import { detectImageFormat } from "./image-format.ts";

describe("detectImageFormat", () => {
  test.each([
    ["png", pngBytes(), "image/png"],
    ["jpg", IMAGE_HEADS.jpeg, "image/jpeg"],
    ["gif", IMAGE_HEADS.gif, "image/gif"],
    ["webp", IMAGE_HEADS.webp, "image/webp"],
  ])("recognises %s", (extension, bytes, contentType) => {
    expect(detectImageFormat(bytes)).toEqual({ extension, contentType } as never);
  });

  test.each([
    ["text", new TextEncoder().encode("hello, world")],
    ["empty", new Uint8Array()],
    ["truncated png", pngBytes().slice(0, 4)],
    ["svg", new TextEncoder().encode("<svg xmlns='http://www.w3.org/2000/svg'/>")],
    ["RIFF that is not WebP", new TextEncoder().encode("RIFF\0\0\0\0WAVEfmt ")],
    ["pdf", new TextEncoder().encode("%PDF-1.7")],
  ])("rejects %s", (_, bytes) => {
    expect(detectImageFormat(bytes)).toBeUndefined();
  });
});
