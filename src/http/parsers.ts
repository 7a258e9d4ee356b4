/**
 * Body parsers that insist on the declared content type (a wrong one is 415), read the body
 * within the request's size limit as it streams in (413), and refuse bodies that cannot be
 * parsed (400) or that name a field twice or name `__proto__` (422).
 */
import {
  AppError,
  type FieldError,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
  ValidationError,
} from "../errors.ts";
import { MAX_JSON_BODY_BYTES } from "./limits.ts";

export const JSON_REQUIRED = "Send the body as application/json.";
export const INVALID_JSON = "The request body is not valid JSON.";
export const MULTIPART_REQUIRED = "Send the photo as multipart/form-data in field `file`.";
export const INVALID_MULTIPART = "The multipart body could not be parsed.";
export const bodyTooLarge = (limit: number) => `The request body is larger than ${limit} bytes.`;

const bodyLimits = new WeakMap<Request, number>();

/**
 * Notes the body-size limit of a request (request-context.ts does, by path, for every request);
 * the parsers enforce it. Unnoted, the JSON limit applies.
 */
export function setBodyLimit(request: Request, limit: number): void {
  bodyLimits.set(request, limit);
}

/** The body-size limit noted for a request (for parsers elsewhere, e.g. the photo upload's). */
export const bodyLimitOf = (request: Request): number =>
  bodyLimits.get(request) ?? MAX_JSON_BODY_BYTES;

const JSON_TYPE = /^application\/([\w.+-]+\+)?json\b/i;
const FORM_TYPE = /^application\/x-www-form-urlencoded\b/i;

const contentType = (request: Request) => request.headers.get("content-type") ?? "";

export const UNCOMPRESSED_REQUIRED =
  "Send the request body uncompressed: no Content-Encoding is accepted on requests.";
export const UTF8_REQUIRED = "Send the body as UTF-8 (charset=utf-8, or no charset).";
const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)"?/i;

/**
 * A body the parsers would misread: compressed (a Content-Encoding other than identity, which
 * they would take for the bytes themselves), or text declared in a charset other than UTF-8.
 * Both are 415 (RFC 9110, 15.5.16), never a 400 about bytes the client did not mean.
 */
export function refuseUnreadableBody(request: Request, text: boolean): void {
  const encoding = request.headers.get("content-encoding")?.trim().toLowerCase();
  if (encoding && encoding !== "identity") {
    throw new UnsupportedMediaTypeError(UNCOMPRESSED_REQUIRED);
  }
  const charset = text ? CHARSET.exec(contentType(request))?.[1]?.toLowerCase() : undefined;
  if (charset && charset !== "utf-8" && charset !== "utf8") {
    throw new UnsupportedMediaTypeError(UTF8_REQUIRED);
  }
}

const tooLarge = (limit: number) => new PayloadTooLargeError(bodyTooLarge(limit));

/**
 * The body's chunks as they arrive, counted: past `limit` bytes the upload is cancelled (what
 * is still on its way is never read) and a 413 thrown; a body that breaks off is a 400.
 */
export async function* limitedChunks(
  body: ReadableStream<Uint8Array>,
  limit: number,
): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  let size = 0;
  try {
    for (;;) {
      const chunk = await reader.read().catch(() => {
        throw new AppError("bad_request", "The request body could not be read.");
      });
      if (chunk.done) return;
      size += chunk.value.byteLength;
      if (size > limit) {
        reader.cancel().catch(() => {});
        throw tooLarge(limit);
      }
      yield chunk.value;
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * The body's bytes, at most `limit` of them: a declared Content-Length over the limit is refused
 * before anything is read, and a body without one (chunked) is counted as it arrives and refused
 * as soon as it passes the limit, so an oversized body is never held in memory.
 */
export async function readBody(
  request: Request,
  limit = bodyLimits.get(request) ?? MAX_JSON_BODY_BYTES,
): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (declared > limit) throw tooLarge(limit);
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of limitedChunks(request.body, limit)) {
    chunks.push(chunk);
    size += chunk.byteLength;
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

async function readText(request: Request): Promise<string> {
  refuseUnreadableBody(request, true);
  const bytes = await readBody(request);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new AppError("bad_request", "The request body is not valid UTF-8.");
  }
}

export async function jsonBody({ request }: { request: Request }): Promise<unknown> {
  if (!JSON_TYPE.test(contentType(request))) {
    throw new UnsupportedMediaTypeError(JSON_REQUIRED);
  }
  const text = await readText(request);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AppError("bad_request", INVALID_JSON);
  }
  const bad = badJsonKey(text);
  if (bad) throw new ValidationError("Invalid body.", [bad]);
  return value;
}

/** JSON or an HTML form (OAuth2 clients send forms): anything else is 415. */
export async function jsonOrFormBody({ request }: { request: Request }): Promise<unknown> {
  if (!FORM_TYPE.test(contentType(request))) return jsonBody({ request });
  return fieldsOf(new URLSearchParams(await readText(request)).entries());
}

/** Form fields as an object; a field given twice, or named `__proto__`, is refused. */
export function fieldsOf<V>(entries: Iterable<[string, V]>): Record<string, V> {
  const fields: Record<string, V> = {};
  for (const [name, value] of entries) {
    const bad = keyProblem(name, Object.hasOwn(fields, name), `/${pointerToken(name)}`);
    if (bad) throw new ValidationError("Invalid body.", [bad]);
    fields[name] = value; // never `__proto__` here, so always an own property
  }
  return fields;
}

function keyProblem(key: string, repeated: boolean, path: string): FieldError | undefined {
  // JSON.parse and Object.fromEntries make `__proto__` an own property; copied onto another
  // object it would set that object's prototype instead, so it is no field anyone may send.
  if (key === "__proto__") return { path, message: "Property '__proto__' should not be provided" };
  if (repeated) return { path, message: "is given more than once" };
  return undefined;
}

/** A key as a JSON Pointer (RFC 6901) reference token. */
export const pointerToken = (key: string) => key.replaceAll("~", "~0").replaceAll("/", "~1");

interface Frame {
  object: boolean;
  keys: Set<string>;
  /** The current key (objects) or index (arrays). */
  at: string;
  index: number;
  expectKey: boolean;
}

/** Deepest nesting of a JSON body: far more than any request of this API needs. */
export const MAX_JSON_DEPTH = 32;

const QUOTE = 34;
const BACKSLASH = 92;

/**
 * The first object key in `text` (valid JSON) that repeats within its object, where JSON.parse
 * would silently keep the last, or that is `__proto__`. One pass, no recursion: nesting depth
 * costs nothing but the stack array.
 */
export function badJsonKey(text: string): FieldError | undefined {
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      let end = i + 1;
      let escaped = false;
      for (; end < text.length; end++) {
        const d = text.charCodeAt(end);
        if (escaped) escaped = false;
        else if (d === BACKSLASH) escaped = true;
        else if (d === QUOTE) break;
      }
      const top = stack.at(-1);
      if (top?.object && top.expectKey) {
        const raw = text.slice(i, end + 1);
        const key = raw.includes("\\") ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        const bad = keyProblem(key, top.keys.has(key), "");
        if (bad) {
          const parents = stack.slice(0, -1).map((f) => `/${pointerToken(f.at)}`);
          return { ...bad, path: `${parents.join("")}/${pointerToken(key)}` };
        }
        top.keys.add(key);
        top.at = key;
        top.expectKey = false;
      }
      i = end;
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      // No body here nests deeply; a validator walking 100k levels blocks the process for
      // seconds and then overflows its stack, so such a body is refused before validation.
      if (stack.length >= MAX_JSON_DEPTH) {
        return { path: "/", message: `is nested deeper than ${MAX_JSON_DEPTH} levels` };
      }
      stack.push(
        c === 123
          ? { object: true, keys: new Set(), at: "", index: 0, expectKey: true }
          : { object: false, keys: new Set(), at: "0", index: 0, expectKey: false },
      );
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      stack.pop();
    } else if (c === 44 /* , */) {
      const top = stack.at(-1);
      if (top?.object) top.expectKey = true;
      else if (top) top.at = String(++top.index);
    }
  }
  return undefined;
}
