/** Answers that skip Elysia's response check: the largest cost of a listing in this process. */
import type { JsonText } from "../db/json-text.ts";

/**
 * A response schema that documents the answer (OpenAPI) but is not checked: Elysia checks every
 * value a handler returns against its route's response schema, which for a page of 20 pets cost
 * about 14 µs, more than anything else the request did here. The handler's types vouch for the
 * shape instead. `noValidate` is Elysia's own switch; not enumerable, so that it stays out of the
 * OpenAPI document.
 */
export function unchecked<T extends object>(schema: T): T {
  const copy = { ...schema }; // keeps TypeBox's symbol keys (Kind)
  Object.defineProperty(copy, "noValidate", { value: true, enumerable: false });
  return copy;
}

/**
 * Sends `json`, the JSON text of a `T` (a cached page, say; as a string or its UTF-8 bytes), as it
 * is: no parse and stringify again. Typed as the `T` it encodes, so that the route still types against its schema; only for
 * a route whose response schema is `unchecked`, or Elysia would check the text against it.
 */
export function jsonText<T>(set: { headers: Record<string, unknown> }, json: JsonText): T {
  // What Response.json, Elysia's way with an object, sends.
  set.headers["content-type"] = "application/json;charset=utf-8";
  return json as unknown as T;
}
