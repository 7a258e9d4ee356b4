/**
 * Query strings, read by the routes themselves: one pass over the text, no schema compiled around
 * the handler. Elysia's own query handling (parse, check, and a decode it runs twice, on every
 * request of the route) cost about 7 µs of CPU per GET /pets over HTTP: more than half of what
 * the app spent beyond a bare Bun.serve answering the same bytes (both over a canned database,
 * wrk -c64: the app 30 to 33 µs a request with it, 23 to 26 without; the bare server 20 to 21).
 */
import { Value } from "@sinclair/typebox/value";
import type { TSchema } from "elysia";
import { type FieldError, ValidationError } from "../errors.ts";
import { pointerToken } from "./parsers.ts";
import { invalidInput } from "./problem.ts";
import { schemaMessage } from "./schema-message.ts";

/** What a query parameter a route does not take is told (TypeBox's words, as Elysia answers). */
export const unknownParameter = (name: string) => `Property '${name}' should not be provided`;

/** How one parameter's text becomes its value, or why it cannot. */
export interface QueryParameter<T> {
  read(text: string): { value: T } | { error: string };
}

type QueryValues<P> = { [K in keyof P]?: P[K] extends QueryParameter<infer T> ? T : never };

const DECIMAL = /^-?[0-9]+$/;

/**
 * Decimal digits from `min` to `max`. Not JavaScript's `+text`, which also takes `0x10`, `+5`,
 * `1e1` and surrounding spaces.
 */
export function integerParameter(min: number, max: number, error: string): QueryParameter<number> {
  return {
    read(text) {
      const value = DECIMAL.test(text) ? Number(text) : Number.NaN;
      return value >= min && value <= max ? { value } : { error };
    },
  };
}

export function booleanParameter(error: string): QueryParameter<boolean> {
  return {
    read: (text) => (text === "true" || text === "false" ? { value: text === "true" } : { error }),
  };
}

/** Text that `schema` accepts (a TextField, say), with the schema's own message when not. */
export function schemaParameter(schema: TSchema): QueryParameter<string> {
  return {
    read: (text) =>
      Value.Check(schema, text)
        ? { value: text }
        : { error: schemaMessage(schema, text) ?? "has a value this parameter does not take" },
  };
}

/** Each name-value pair of a query string, in order, decoded as URLSearchParams decodes them. */
function forEachPair(query: string, visit: (name: string, text: string) => void): void {
  if (query.includes("%") || query.includes("+")) {
    for (const [name, text] of new URLSearchParams(query)) visit(name, text);
    return;
  }
  for (let from = 0; from < query.length; ) {
    let end = query.indexOf("&", from);
    if (end === -1) end = query.length;
    if (end > from) {
      const equals = query.indexOf("=", from);
      if (equals === -1 || equals > end) visit(query.slice(from, end), "");
      else visit(query.slice(from, equals), query.slice(equals + 1, end));
    }
    from = end + 1;
  }
}

/**
 * The query of `url` read with `parameters`: each of them at most once (`?limit=1&limit=2` is
 * ambiguous), no other, each readable. Otherwise a 422 that lists one problem per parameter, in
 * the order the query gives them. A well-formed query allocates little more than its values: it
 * is read on every request of a list.
 */
export function readQuery<P extends Record<string, QueryParameter<unknown>>>(
  url: string,
  parameters: P,
): QueryValues<P> {
  const values: Record<string, unknown> = {};
  const start = url.indexOf("?");
  if (start === -1) return values as QueryValues<P>;
  const seen: string[] = [];
  let problems: Map<string, string> | undefined;
  const problem = (name: string, message: string) => {
    problems ??= new Map();
    if (!problems.has(name)) problems.set(name, message);
  };
  forEachPair(url.slice(start + 1), (name, text) => {
    const parameter = Object.hasOwn(parameters, name) ? parameters[name] : undefined;
    if (parameter === undefined) return problem(name, unknownParameter(name));
    // Only the route's own names: as many as it has parameters, whatever the query holds.
    if (seen.includes(name)) return problem(name, `${name} is given more than once`);
    seen.push(name);
    const read = parameter.read(text);
    if ("error" in read) problem(name, read.error);
    else values[name] = read.value;
  });
  if (problems) {
    const errors: FieldError[] = [...problems].map(([name, message]) => ({
      path: `/${pointerToken(name)}`,
      message,
    }));
    throw new ValidationError(invalidInput("query"), errors);
  }
  return values as QueryValues<P>;
}
