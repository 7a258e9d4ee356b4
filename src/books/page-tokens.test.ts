import { describe, expect, test } from "bun:test";
import { ValidationError } from "../errors.ts";
import {
  createPageTokens,
  INVALID_PAGE_TOKEN,
  pageTokenKey,
  randomPageTokenKey,
} from "./page-tokens.ts";

const SECRET = "page-tokens-test-secret-0123456789-0123456789";
const ID = "0199a7c6-1234-7abc-8def-0123456789ab";
const QUERY = { pageSize: 20 };
const tokens = createPageTokens(pageTokenKey(SECRET));

const refusal = (token: string, query = QUERY) => {
  try {
    tokens.decode(token, query);
  } catch (err) {
    return err;
  }
  return undefined;
};

test("a token carries the id, opaquely, back to the same query", () => {
  const token = tokens.encode(ID, QUERY);
  expect(token).toMatch(/^[A-Za-z0-9_-]{44}$/);
  expect(token).not.toContain("0199a7c6");
  expect(tokens.decode(token, QUERY)).toBe(ID);
  // Another server with the same secret (another replica) reads it too.
  expect(createPageTokens(pageTokenKey(SECRET)).decode(token, QUERY)).toBe(ID);
});

describe("anything else is a ValidationError naming page_token", () => {
  const token = tokens.encode(ID, QUERY);
  const bytes = Buffer.from(token, "base64url");

  const positions = Array.from(bytes.keys());
  test.each(positions)("byte %p flipped", (i: number) => {
    const flipped = Buffer.from(bytes);
    flipped[i] = (flipped[i] as number) ^ 0x01;
    const err = refusal(flipped.toString("base64url"));
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toBe(INVALID_PAGE_TOKEN);
  });

  test.each([
    ["another page size", () => refusal(token, { pageSize: 21 })],
    [
      "another secret",
      () => refusal(createPageTokens(pageTokenKey(`${SECRET}!`)).encode(ID, QUERY)),
    ],
    [
      "a random key (another process)",
      () => refusal(createPageTokens(randomPageTokenKey()).encode(ID, QUERY)),
    ],
    // The key is derived: a tag made with the secret itself is no good either.
    [
      "the secret used as the key",
      () => refusal(createPageTokens(Buffer.from(SECRET)).encode(ID, QUERY)),
    ],
    ["an empty token", () => refusal("")],
    ["a token cut short", () => refusal(token.slice(0, -1))],
    [
      "a token with a byte more",
      () => refusal(Buffer.concat([bytes, Buffer.of(0)]).toString("base64url")),
    ],
    ["a token with padding", () => refusal(`${token}=`)],
    [
      "the unsigned token of the old format",
      () => refusal(Buffer.concat([Buffer.of(1), bytes.subarray(1, 17)]).toString("base64url")),
    ],
    ["a raw id", () => refusal(ID)],
  ])("%s", (_, refuse) => {
    expect(refuse()).toBeInstanceOf(ValidationError);
  });
});
