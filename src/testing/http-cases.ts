/**
 * Input cases as data, so one table drives both the in-process route tests (app.handle) and the
 * contract suite against the compiled binary (fetch): both suites send exactly the same requests.
 */
import { pngBytes } from "../storage/png.ts";

/** What fetch and Request accept as a body. */
export type CaseBody = NonNullable<RequestInit["body"]>;

export interface CaseRequest {
  method: string;
  /** May hold `{pet}`, `{book}` (any `{resource}`): replaced by the id of one the runner made. */
  path: string;
  headers?: Record<string, string>;
  /** Makes the body: a fresh one per send (a stream can be read only once). */
  body?: () => CaseBody;
  /**
   * Sent without the runner's credentials (API key or bearer token); `headers` may still carry
   * wrong ones.
   */
  anonymous?: boolean;
}

export interface HttpCase {
  name: string;
  request: CaseRequest;
  expectedStatus: number;
  /** For a 422: a path its problem's `errors` must name. */
  errorPath?: string;
  /** For a 405: the `Allow` header it must carry. */
  allow?: string;
}

/** A method the path's routes do not take: 405, and `Allow` lists those they do. */
export const wrongMethod = (method: string, path: string, allow: string): HttpCase => ({
  name: `${method} ${path}`,
  request: { method, path },
  expectedStatus: 405,
  allow,
});

export const MiB = 1024 * 1024;

/** What the runners do with a case: its path with ids filled in, and a fetch/Request init. */
export function caseInit(
  request: CaseRequest,
  ids: Record<string, string | undefined> = {},
  credentials: Record<string, string> = {},
): { path: string; init: RequestInit } {
  const path = request.path.replace(/\{(\w+)\}/g, (slot, name: string) => ids[name] ?? slot);
  const body = request.body?.();
  const init: RequestInit & { duplex?: "half" } = {
    method: request.method,
    headers: { ...(request.anonymous ? {} : credentials), ...request.headers },
    ...(body !== undefined && { body }),
    // fetch needs this to send a stream (chunked, without Content-Length).
    ...(body instanceof ReadableStream && { duplex: "half" }),
  };
  return { path, init };
}

export const JSON_HEADERS = { "content-type": "application/json" };

/** A JSON body: `value` serialised, or a string sent as it is (malformed JSON, raw escapes). */
export function json(value: unknown, headers: Record<string, string> = JSON_HEADERS) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return { headers, body: () => text };
}

/** Bytes with no content type at all (fetch adds none for a byte array). */
export function bytes(data: Uint8Array, headers: Record<string, string> = {}) {
  return { headers, body: () => data.slice() };
}

/** The bytes as a stream of chunks: sent chunked, without a Content-Length. */
export function streamed(data: Uint8Array, headers: Record<string, string>, chunkSize = 64 * 1024) {
  return {
    headers,
    body: () => {
      let at = 0;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (at >= data.length) {
            controller.close();
            return;
          }
          controller.enqueue(data.slice(at, at + chunkSize));
          at += chunkSize;
        },
      });
    },
  };
}

/** Big bodies are made once per process, however many cases send them (never written to). */
const made = new Map<string, Uint8Array>();

/**
 * A JSON object of exactly `size` bytes whose `field` holds the padding: well-formed, so a server
 * that read it whole would answer 422 (too long), not 413.
 */
export function jsonOfSize(size: number, fields: Record<string, unknown>, field: string) {
  const skeleton = JSON.stringify({ ...fields, [field]: "" });
  const key = `${size} ${field} ${skeleton}`;
  let data = made.get(key);
  if (!data) {
    const padding = size - new TextEncoder().encode(skeleton).length;
    if (padding < 0) throw new Error(`jsonOfSize: ${size} bytes is too small`);
    data = new TextEncoder().encode(JSON.stringify({ ...fields, [field]: "x".repeat(padding) }));
    made.set(key, data);
  }
  return data;
}

/** A multipart body with one file part (or a text part, when `content` is a string). */
export function multipart(parts: [field: string, content: Uint8Array | string, name?: string][]) {
  return {
    body: () => {
      const form = new FormData();
      for (const [field, content, name = "photo.bin"] of parts) {
        if (typeof content === "string") form.append(field, content);
        else form.append(field, new File([content], name, { type: "application/octet-stream" }));
      }
      return form;
    },
  };
}

/** A multipart body as raw bytes with its boundary, to stream it or to declare its length. */
export function multipartBytes(fileBytes: Uint8Array, field = "file") {
  const boundary = "petbooks-test-boundary-7MA4YWxkTrZu0gW";
  const head = new TextEncoder().encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="p.png"\r\n` +
      "Content-Type: application/octet-stream\r\n\r\n",
  );
  const tail = new TextEncoder().encode(`\r\n--${boundary}--\r\n`);
  const data = new Uint8Array(head.length + fileBytes.length + tail.length);
  data.set(head);
  data.set(fileBytes, head.length);
  data.set(tail, head.length + fileBytes.length);
  return { data, contentType: `multipart/form-data; boundary=${boundary}` };
}

/** A PNG of exactly `size` bytes (a real signature, then padding). */
export function pngOfSize(size: number): Uint8Array {
  const png = pngBytes();
  const data = new Uint8Array(size).fill(0x20);
  data.set(png.subarray(0, Math.min(png.length, size)));
  return data;
}

/** `n` copies of a character outside the BMP: 2n UTF-16 code units, n characters. */
export const emoji = (n: number) => "🐈".repeat(n);
