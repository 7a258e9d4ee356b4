import { describe, expect, test } from "bun:test";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { t } from "elysia";
import { bareApp } from "../testing/bare-app.ts";
import { CharactersField, TextField } from "./text-field.ts";

const name = TextField("name", { minLength: 1, maxLength: 3, description: "A name." });
const trimmedName = TextField("name", { minLength: 1, maxLength: 3, trimmed: true });

describe("TextField", () => {
  const check = TypeCompiler.Compile(t.Object({ name }));

  test.each([["a"], ["abc"], ["🐈🐈🐈"], ["é"]])("accepts %j", (value) => {
    expect(check.Check({ name: value })).toBe(true);
  });

  test.each([[""], ["abcd"], ["🐈🐈🐈🐈"], ["a\u0000"], ["\ud800"], [3], [null], [["a"]]])(
    "refuses %j",
    (value) => {
      expect(check.Check({ name: value })).toBe(false);
    },
  );

  test("documents itself as a plain string with its bounds", () => {
    expect(JSON.parse(JSON.stringify(name))).toEqual({
      type: "string",
      minLength: 1,
      maxLength: 3,
      description: "A name.",
      error: "name must be a string of 1 to 3 characters, without NUL characters",
    });
    // What the OpenAPI document is made of survives structuredClone (see openapi-tidy.ts).
    expect(() => structuredClone(name)).not.toThrow();
  });

  test("errors say what is wrong with the value", async () => {
    const app = bareApp().post("/", ({ body }) => body, {
      body: t.Object({ name: trimmedName }, { additionalProperties: false }),
    });
    const send = async (body: unknown) => {
      const res = await app.handle(
        new Request("http://localhost/", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        }),
      );
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    // Validated as it will be stored, trimmed; the trimming itself is the service's.
    expect(await send({ name: " ab " })).toEqual({ status: 200, body: { name: " ab " } });
    expect((await send({ name: "   " })).body.errors).toEqual([
      { path: "/name", message: "name must be 1 to 3 characters long" },
    ]);
    expect((await send({ name: "a\u0000" })).body.errors).toEqual([
      { path: "/name", message: "name must not contain the NUL character (U+0000)" },
    ]);
    expect((await send({ name: "🐈🐈🐈🐈" })).body.errors).toEqual([
      { path: "/name", message: "name must be 1 to 3 characters long" },
    ]);
    expect((await send({ name: 5 })).body.errors).toEqual([
      {
        path: "/name",
        message: "name must be a string of 1 to 3 characters, without NUL characters",
      },
    ]);
    expect((await send({})).body.errors).toEqual([
      {
        path: "/name",
        message: "name must be a string of 1 to 3 characters, without NUL characters",
      },
    ]);
  });
});

describe("TextField, trimmed", () => {
  const check = TypeCompiler.Compile(t.Object({ name: trimmedName }));

  test.each([["a"], [" abc "], ["\t🐈🐈🐈\n"]])("accepts %j: its trimmed text fits", (value) => {
    expect(check.Check({ name: value })).toBe(true);
  });

  test.each([[" "], [" abcd "], [" a\u0000 "]])("refuses %j", (value) => {
    expect(check.Check({ name: value })).toBe(false);
  });

  test("documents itself as the untrimmed field does", () => {
    expect(JSON.parse(JSON.stringify(trimmedName))).toEqual({
      type: "string",
      minLength: 1,
      maxLength: 3,
      error: "name must be a string of 1 to 3 characters, without NUL characters",
    });
  });
});

describe("CharactersField", () => {
  const id = CharactersField("each id", { maxLength: 3 });
  const check = TypeCompiler.Compile(t.Object({ id }));

  // Only the length counts, in characters: NUL or a lone surrogate is a lookup that finds nothing.
  test.each([[""], ["abc"], ["🐈🐈🐈"], ["a\u0000"], ["\ud800"]])("accepts %j", (value) => {
    expect(check.Check({ id: value })).toBe(true);
  });

  test.each([["abcd"], ["🐈🐈🐈🐈"], ["🐈🐈🐈a"], [3], [null]])("refuses %j", (value) => {
    expect(check.Check({ id: value })).toBe(false);
  });

  test("documents itself as a plain string with its bound", () => {
    expect(JSON.parse(JSON.stringify(id))).toEqual({
      type: "string",
      maxLength: 3,
      error: "each id must be a string of at most 3 characters",
    });
  });
});
