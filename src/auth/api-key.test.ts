import { expect, test } from "bun:test";
import { apiKeyMatches } from "./api-key.ts";

const KEY = "correct-horse-battery-staple";

test.each([
  [KEY, true],
  [`${KEY} `, false],
  [KEY.slice(0, -1), false],
  [KEY.toUpperCase(), false],
  ["", false],
  [null, false],
  [undefined, false],
])("apiKeyMatches(%p) is %p", (given, expected) => {
  expect(apiKeyMatches(given, KEY)).toBe(expected);
});
