/**
 * ListBooks page tokens: opaque to callers, tamper-evident, and bound to the query they continue.
 * A token is a version byte, the last id of the page and an HMAC-SHA256 tag over both and the
 * query, base64url-encoded; the server keeps no state for it.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { ValidationError } from "../errors.ts";

/** What a token is valid for: the page size actually served (ListBooks has no filter). */
export interface PageQuery {
  pageSize: number;
}

export interface PageTokens {
  encode(lastId: string, query: PageQuery): string;
  /** The id the next page starts after; a ValidationError for any token not issued for `query`. */
  decode(token: string, query: PageQuery): string;
}

// Version 1 tokens carried the id without a tag; they are refused like any forgery.
const VERSION = 2;
const ID_BYTES = 16;
/** 128 bits of HMAC-SHA256: forging one is a 2^-128 guess per try. */
const TAG_BYTES = 16;
const TOKEN_BYTES = 1 + ID_BYTES + TAG_BYTES;
const TOKEN = /^[A-Za-z0-9_-]{44}$/;
/** The tag also covers the method, so a key shared with other uses cannot mint these tokens. */
const PURPOSE = "petbooks.v1.BookService/ListBooks page token";

export const INVALID_PAGE_TOKEN =
  "page_token is not valid: pass the next_page_token of the previous page unchanged, with the same page_size";

/**
 * The tag key, derived from a secret (JWT_SECRET) with HKDF under a label of its own: the JWT
 * signing key itself never signs anything else.
 */
export function pageTokenKey(secret: string): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, "", PURPOSE, 32));
}

/** A key for this process alone: its tokens do not survive a restart or work on other replicas. */
export function randomPageTokenKey(): Buffer {
  return randomBytes(32);
}

export function createPageTokens(key: Uint8Array): PageTokens {
  const tag = (head: Uint8Array, query: PageQuery) =>
    createHmac("sha256", key)
      .update(PURPOSE)
      .update(head)
      .update(JSON.stringify({ page_size: query.pageSize }))
      .digest()
      .subarray(0, TAG_BYTES);

  return {
    encode(lastId, query) {
      const head = Buffer.concat([
        Buffer.of(VERSION),
        Buffer.from(lastId.replaceAll("-", ""), "hex"),
      ]);
      return Buffer.concat([head, tag(head, query)]).toString("base64url");
    },

    decode(token, query) {
      const bytes = Buffer.from(token, "base64url");
      // Only the exact spelling this server writes: base64url has several for the last few bits.
      const wellFormed =
        TOKEN.test(token) &&
        bytes.length === TOKEN_BYTES &&
        bytes[0] === VERSION &&
        bytes.toString("base64url") === token;
      const head = bytes.subarray(0, 1 + ID_BYTES);
      // Constant time: how much of a guessed tag is right must not show in the answer's timing.
      if (!wellFormed || !timingSafeEqual(bytes.subarray(1 + ID_BYTES), tag(head, query))) {
        throw new ValidationError(INVALID_PAGE_TOKEN);
      }
      const hex = bytes.subarray(1, 1 + ID_BYTES).toString("hex");
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    },
  };
}
