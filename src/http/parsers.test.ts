import { describe, expect, test } from "bun:test";
import { AppError } from "../errors.ts";
import { MAX_JSON_BODY_BYTES } from "./limits.ts";
import {
  badJsonKey,
  jsonBody,
  jsonOrFormBody,
  MAX_JSON_DEPTH,
  readBody,
  setBodyLimit,
  UNCOMPRESSED_REQUIRED,
  UTF8_REQUIRED,
} from "./parsers.ts";

const KiB = 1024;

/** A stream of `total` bytes in chunks, counting how many bytes were pulled from it. */
function countingStream(total: number, chunk = 4 * KiB) {
  const counter = { pulled: 0 };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (counter.pulled >= total) return controller.close();
      const n = Math.min(chunk, total - counter.pulled);
      counter.pulled += n;
      controller.enqueue(new Uint8Array(n).fill(0x20));
    },
  });
  return { stream, counter };
}

function request(body: RequestInit["body"], headers: Record<string, string> = {}) {
  return new Request("http://localhost/", {
    method: "POST",
    headers,
    body,
    ...(body instanceof ReadableStream && { duplex: "half" }),
  } as RequestInit);
}

/** The AppError a parser throws (or undefined), with its code and field errors. */
async function failure(run: Promise<unknown>) {
  try {
    await run;
    return undefined;
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    return { code: err.code, message: err.message, errors: err.fieldErrors };
  }
}

describe("readBody", () => {
  test("reads a body up to the limit exactly", async () => {
    const { stream } = countingStream(16 * KiB);
    expect((await readBody(request(stream), 16 * KiB)).length).toBe(16 * KiB);
    expect((await readBody(request("abc"), 3)).length).toBe(3);
    expect((await readBody(new Request("http://localhost/"), 3)).length).toBe(0);
  });

  test("a chunked body is refused as soon as it passes the limit", async () => {
    const { stream, counter } = countingStream(10 * 1024 * KiB);
    expect(await failure(readBody(request(stream), 16 * KiB))).toMatchObject({
      code: "payload_too_large",
      message: `The request body is larger than ${16 * KiB} bytes.`,
    });
    expect(counter.pulled).toBeLessThan(64 * KiB);
  });

  test("a declared Content-Length over the limit is refused before anything is read", async () => {
    const { stream, counter } = countingStream(64 * KiB);
    const req = request(stream, { "content-length": String(64 * KiB) });
    expect(await failure(readBody(req, 16 * KiB))).toMatchObject({ code: "payload_too_large" });
    expect(counter.pulled).toBeLessThanOrEqual(4 * KiB); // at most what the stream pre-filled
  });

  test("the limit comes from the request (set by request-context), else the JSON limit", async () => {
    const noted = request("x".repeat(10));
    setBodyLimit(noted, 5);
    expect(await failure(readBody(noted))).toMatchObject({ code: "payload_too_large" });
    const unnoted = request(new Uint8Array(MAX_JSON_BODY_BYTES + 1));
    expect(await failure(readBody(unnoted))).toMatchObject({ code: "payload_too_large" });
  });
});

describe("jsonBody", () => {
  const parse = (text: string | Uint8Array, type = "application/json") =>
    jsonBody({ request: request(text, { "content-type": type }) });

  test("parses JSON, whatever the +json type", async () => {
    expect(await parse('{"a":[1,{"b":null}]}')).toEqual({ a: [1, { b: null }] });
    expect(await parse("[]", "application/problem+json; charset=utf-8")).toEqual([]);
  });

  test.each([
    ["text/plain", "unsupported_media_type"],
    ["", "unsupported_media_type"],
    ["application/jsonx", "unsupported_media_type"],
  ])("content type %j is refused", async (type, code) => {
    expect(await failure(parse("{}", type))).toMatchObject({ code });
  });

  test.each([
    [{ "content-encoding": "gzip" }, UNCOMPRESSED_REQUIRED],
    [{ "content-encoding": "br" }, UNCOMPRESSED_REQUIRED],
    [{ "content-type": "application/json; charset=utf-16" }, UTF8_REQUIRED],
    [{ "content-type": 'application/json; charset="iso-8859-1"' }, UTF8_REQUIRED],
  ])("a body it would misread (%j) is 415, not a 400 about its bytes", async (headers, message) => {
    const sent = request('{"a":1}', { "content-type": "application/json", ...headers });
    expect(await failure(jsonBody({ request: sent }))).toEqual({
      code: "unsupported_media_type",
      message,
      errors: [],
    });
  });

  test("identity encoding and a UTF-8 charset, however written, are read", async () => {
    const sent = request('{"a":1}', {
      "content-type": "application/json;Charset=UTF8",
      "content-encoding": "identity",
    });
    expect(await jsonBody({ request: sent })).toEqual({ a: 1 });
  });

  test.each([
    ["", "The request body is not valid JSON."],
    ["{", "The request body is not valid JSON."],
    [new Uint8Array([0x22, 0xff, 0x22]), "The request body is not valid UTF-8."],
  ])("%j is a 400", async (text, message) => {
    expect(await failure(parse(text))).toEqual({ code: "bad_request", message, errors: [] });
  });

  test.each([
    ['{"__proto__":{}}', "/__proto__", "Property '__proto__' should not be provided"],
    ['{"a":1,"__proto__":null}', "/__proto__", "Property '__proto__' should not be provided"],
    [
      '{"a":{"b":[{"__proto__":1}]}}',
      "/a/b/0/__proto__",
      "Property '__proto__' should not be provided",
    ],
    ['{"\\u005f_proto__":{}}', "/__proto__", "Property '__proto__' should not be provided"],
    ['{"a":1,"a":2}', "/a", "is given more than once"],
    ['{"name":"x","na\\u006de":"y"}', "/name", "is given more than once"],
    ['{"a":{"x":1},"b":{"x":1,"x":2}}', "/b/x", "is given more than once"],
    ['[{"a":1},{"a":1},{"c":1,"c":2}]', "/2/c", "is given more than once"],
    ['{"a/b~":{"k":1,"k":1}}', "/a~1b~0/k", "is given more than once"],
  ])("%s is a 422 at %s", async (text, path, message) => {
    expect(await failure(parse(text))).toEqual({
      code: "validation",
      message: "Invalid body.",
      errors: [{ path, message }],
    });
  });

  test("the same key in different objects, and keys inside strings, are fine", async () => {
    expect(await parse('{"a":{"x":1},"b":{"x":"{\\"x\\":1,\\"x\\":2}"},"c":"\\\\"}')).toEqual({
      a: { x: 1 },
      b: { x: '{"x":1,"x":2}' },
      c: "\\",
    });
    expect(badJsonKey('{"k":"__proto__","v":["__proto__"]}')).toBeUndefined();
  });

  test("nesting up to the limit is fine, deeper is refused before validation", async () => {
    const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
    expect(badJsonKey(nested(MAX_JSON_DEPTH))).toBeUndefined();
    for (const depth of [MAX_JSON_DEPTH + 1, 200_000]) {
      expect(badJsonKey(nested(depth))?.message).toBe(
        `is nested deeper than ${MAX_JSON_DEPTH} levels`,
      );
      expect(badJsonKey(`{"username":${nested(depth)}}`)).toBeDefined();
      await expect(parse(nested(depth))).rejects.toMatchObject({ code: "validation" });
    }
  });
});

describe("jsonOrFormBody", () => {
  const form = (text: string) =>
    jsonOrFormBody({
      request: request(text, { "content-type": "application/x-www-form-urlencoded" }),
    });

  test("reads a form, and JSON otherwise", async () => {
    expect(await form("a=1&b=x+y")).toEqual({ a: "1", b: "x y" });
    const json = request('{"a":1}', { "content-type": "application/json" });
    expect(await jsonOrFormBody({ request: json })).toEqual({ a: 1 });
  });

  test.each([
    ["a=1&a=2", "/a", "is given more than once"],
    ["__proto__=x", "/__proto__", "Property '__proto__' should not be provided"],
  ])("%s is a 422", async (text, path, message) => {
    expect(await failure(form(text))).toMatchObject({
      code: "validation",
      errors: [{ path, message }],
    });
  });

  test("a field named constructor is an own field", async () => {
    const fields = (await form("constructor=x")) as Record<string, unknown>;
    expect(Object.hasOwn(fields, "constructor")).toBe(true);
  });

  test("a form over the limit is a 413", async () => {
    const { stream } = countingStream(MAX_JSON_BODY_BYTES + 1);
    const req = request(stream, { "content-type": "application/x-www-form-urlencoded" });
    expect(await failure(jsonOrFormBody({ request: req }))).toMatchObject({
      code: "payload_too_large",
    });
  });
});
