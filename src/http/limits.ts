/** Request size limits, shared by the size check (parsers.ts) and the documented 413 examples. */
export const MAX_JSON_BODY_BYTES = 1024 * 1024;
