/**
 * Request text that is stored in (or searched in) PostgreSQL: a TypeBox type that validates it
 * the way the database counts it, and the one trim that runs before validation.
 */
import { Kind, TypeRegistry, Unsafe } from "@sinclair/typebox";
import { describeBounds, type TextBounds, textProblem } from "../text.ts";

/**
 * A schema may carry, under this key, a function that words the problem with a given value
 * better than its fixed `error` text can; request-context.ts uses it. A symbol key never reaches
 * the OpenAPI document.
 */
export const VALUE_MESSAGE: unique symbol = Symbol("petbooks.valueMessage");

const TEXT_KIND = "PetbooksText";

// TypeBox's own String counts `.length`, UTF-16 code units: 100 emoji would be 200. This kind
// counts code points, as PostgreSQL's char_length does, and refuses what text columns cannot hold.
TypeRegistry.Set<TextBounds>(
  TEXT_KIND,
  (schema, value) => typeof value === "string" && textProblem(value, schema) === undefined,
);

export interface TextFieldOptions extends TextBounds {
  description?: string;
  examples?: string[];
}

/**
 * A string field, documented in OpenAPI as a plain `string` with its `minLength`/`maxLength`,
 * whose lengths are counted in characters (code points) and which may not contain NUL or an
 * unpaired surrogate. `field` names it in error messages.
 */
export function TextField(field: string, options: TextFieldOptions = {}) {
  const error = `${field} must be a string of ${describeBounds(options)}, without NUL characters`;
  return Unsafe<string>({
    ...options,
    type: "string",
    error,
    [VALUE_MESSAGE]: (value: unknown) => {
      const problem = typeof value === "string" ? textProblem(value, options) : undefined;
      return problem ? `${field} ${problem}` : error;
    },
    [Kind]: TEXT_KIND,
  });
}

/**
 * A `transform` hook that trims the named string fields of a JSON body, so "  " is empty and
 * padding does not count towards a length. It runs before validation; the services trim again
 * for callers that are not HTTP (seeding), which changes nothing here.
 */
export function trimFields(...names: string[]) {
  return ({ body }: { body: unknown }) => {
    if (!body || typeof body !== "object" || Array.isArray(body)) return;
    const fields = body as Record<string, unknown>;
    for (const name of names) {
      const value = Object.hasOwn(fields, name) ? fields[name] : undefined;
      if (typeof value === "string") fields[name] = value.trim();
    }
  };
}
