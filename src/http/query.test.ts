import { describe, expect, test } from "bun:test";
import { AppError } from "../errors.ts";
import { booleanParameter, integerParameter, readQuery, schemaParameter } from "./query.ts";
import { TextField } from "./text-field.ts";

const PARAMETERS = {
  limit: integerParameter(1, 100, "limit must be an integer from 1 to 100"),
  flag: booleanParameter("flag must be true or false"),
  name: schemaParameter(TextField("name", { maxLength: 3 })),
};

const read = (query: string) => readQuery(`http://localhost/x${query}`, PARAMETERS);

/** The field errors of the 422 that reading `query` throws. */
function problems(query: string) {
  try {
    read(query);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: "validation", message: "Invalid query." });
    return (err as AppError).fieldErrors;
  }
  throw new Error(`${query} was read without a problem`);
}

describe("readQuery", () => {
  test.each([
    ["", {}],
    ["?", {}],
    ["?&&", {}],
    ["?limit=7&flag=false&name=abc", { limit: 7, flag: false, name: "abc" }],
    ["?limit=007", { limit: 7 }],
    ["?flag=true&", { flag: true }],
    // Decoded as URLSearchParams decodes: percent escapes, and + for a space.
    ["?name=a%2Bb", { name: "a+b" }],
    ["?name=a+b", { name: "a b" }],
    ["?lim%69t=5", { limit: 5 }],
    ["?name=%", { name: "%" }],
    ["?name=", { name: "" }],
    ["?name=a=b", { name: "a=b" }],
    ["?&limit=2&&flag=true&", { limit: 2, flag: true }],
  ])("%j reads as %j", (query, values) => {
    expect(read(query)).toEqual(values);
  });

  test.each([
    "?limit=0",
    "?limit=101",
    "?limit=-1",
    "?limit=",
    "?limit",
    "?limit=1.5",
    "?limit=0x10",
    "?limit=%2B5",
    "?limit=1e1",
    "?limit=%205",
    "?limit=99999999999999999999",
  ])("%j: limit is out of its range or no decimal integer", (query) => {
    expect(problems(query)).toEqual([
      { path: "/limit", message: "limit must be an integer from 1 to 100" },
    ]);
  });

  test.each(["?flag=TRUE", "?flag=1", "?flag=", "?flag=true+"])("%j is no boolean", (query) => {
    expect(problems(query)).toEqual([{ path: "/flag", message: "flag must be true or false" }]);
  });

  test("text is checked by its schema, with the schema's message", () => {
    expect(problems("?name=abcd")).toEqual([
      { path: "/name", message: "name must be at most 3 characters long" },
    ]);
    expect(problems("?name=a%00")).toEqual([
      { path: "/name", message: "name must not contain the NUL character (U+0000)" },
    ]);
  });

  test("a parameter given twice is ambiguous, whatever its values", () => {
    expect(problems("?limit=1&limit=1")).toEqual([
      { path: "/limit", message: "limit is given more than once" },
    ]);
    expect(problems("?name=a&flag=true&name=b&name=c")).toEqual([
      { path: "/name", message: "name is given more than once" },
    ]);
  });

  test("any other parameter is refused by name, escaped as a JSON Pointer", () => {
    expect(problems("?owner=me&__proto__=1&a/b~=2")).toEqual([
      { path: "/owner", message: "Property 'owner' should not be provided" },
      { path: "/__proto__", message: "Property '__proto__' should not be provided" },
      { path: "/a~1b~0", message: "Property 'a/b~' should not be provided" },
    ]);
  });

  test("every problem is listed, one per parameter, in the query's order", () => {
    expect(problems("?flag=no&limit=0&x=1&limit=2&flag=yes")).toEqual([
      { path: "/flag", message: "flag must be true or false" },
      { path: "/limit", message: "limit must be an integer from 1 to 100" },
      { path: "/x", message: "Property 'x' should not be provided" },
    ]);
  });
});
