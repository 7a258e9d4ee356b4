import { expect, test } from "bun:test";
import { apiKeyChecker } from "./api-key.ts";

const KEY = "correct-horse-battery-staple";
const matches = apiKeyChecker(KEY);

test.each([
  [KEY, true],
  [`${KEY} `, false],
  [KEY.slice(0, -1), false],
  [KEY.toUpperCase(), false],
  ["", false],
  [null, false],
  [undefined, false],
])("apiKeyChecker(KEY)(%p) is %p", (given, expected) => {
  expect(matches(given)).toBe(expected);
});
