/**
 * Rules the suite keeps so that it holds on a busy machine. A hook without a timeout gets Bun's
 * 5 s default, and a loaded CI leg once failed on one (the temp-folder cleanup, at 6.5 s).
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Glob } from "bun";

const ROOT = join(import.meta.dir, "..");

/** `beforeAll`/`afterAll`/`beforeEach`/`afterEach` calls in `source` given no second argument. */
function hooksWithoutTimeout(source: string): number[] {
  const lines: number[] = [];
  for (const match of source.matchAll(/\b(?:before|after)(?:All|Each)\(/g)) {
    let depth = 1;
    let secondArgument = false;
    for (let i = match.index + match[0].length; i < source.length && depth > 0; i++) {
      const c = source[i] as string;
      if ("({[".includes(c)) depth++;
      else if (")}]".includes(c)) depth--;
      else if (c === "," && depth === 1) secondArgument = true;
    }
    if (!secondArgument) lines.push(source.slice(0, match.index).split("\n").length);
  }
  return lines;
}

describe("every test hook has an explicit timeout", () => {
  test("the check finds a hook without one, and passes one with one", () => {
    const source = [
      "beforeAll(async () => {",
      "  await start({ a: 1, b: 2 });",
      "});",
      "afterAll(() => stop(1, 2), TEARDOWN_TIMEOUT_MS);",
      "afterEach(() => {});",
    ].join("\n");
    expect(hooksWithoutTimeout(source)).toEqual([1, 5]);
  });

  test("in every file the suite loads", async () => {
    const offenders: string[] = [];
    const files = new Glob("{src,test,deploy}/**/*.ts").scan(ROOT);
    for await (const file of files) {
      if (file === "test/suite-rules.test.ts") continue;
      const source = await Bun.file(join(ROOT, file)).text();
      for (const line of hooksWithoutTimeout(source)) offenders.push(`${file}:${line}`);
    }
    expect(offenders).toEqual([]);
  });
});
