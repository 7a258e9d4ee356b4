import { describe, expect, test } from "bun:test";
import { codePointLength, describeBounds, textProblem } from "./text.ts";

describe("codePointLength counts as PostgreSQL's char_length does", () => {
  test.each([
    ["", 0],
    ["abc", 3],
    ["Барсик", 6],
    ["🐈", 1],
    ["🐈".repeat(100), 100],
    [`${"🐈".repeat(50)}a`, 51],
    ["e\u0301", 2], // a combining accent is a character of its own
    ["👩‍👩‍👧", 5], // a family emoji: 3 people and 2 zero-width joiners
    ["\ud800", 1], // an unpaired surrogate (refused by textProblem anyway)
    ["a\udc00\ud800b", 4],
  ])("%j has %d characters", (value, length) => {
    expect(codePointLength(value)).toBe(length);
  });
});

describe("textProblem", () => {
  const bounds = { minLength: 1, maxLength: 100 };

  test.each([["x"], ["n".repeat(100)], ["🐈".repeat(100)], [`${"🐈".repeat(50)}a`], ["tab\there"]])(
    "accepts %j",
    (value) => {
      expect(textProblem(value, bounds)).toBeUndefined();
    },
  );

  test.each([
    ["", "must be 1 to 100 characters long"],
    ["n".repeat(101), "must be 1 to 100 characters long"],
    ["🐈".repeat(101), "must be 1 to 100 characters long"],
    [`${"🐈".repeat(100)}a`, "must be 1 to 100 characters long"],
    ["a\u0000b", "must not contain the NUL character (U+0000)"],
    ["\u0000", "must not contain the NUL character (U+0000)"],
    ["a\ud800", "must be valid Unicode (it has an unpaired surrogate)"],
    ["\udc00a", "must be valid Unicode (it has an unpaired surrogate)"],
  ])("refuses %j: %s", (value, problem) => {
    expect(textProblem(value, bounds)).toBe(problem);
  });

  test("an upper bound alone", () => {
    expect(textProblem("", { maxLength: 2 })).toBeUndefined();
    expect(textProblem("abc", { maxLength: 2 })).toBe("must be at most 2 characters long");
    expect(describeBounds({ maxLength: 2 })).toBe("at most 2 characters");
  });
});
