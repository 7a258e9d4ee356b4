/**
 * Request text that is stored in (or searched in) PostgreSQL: a TypeBox type that validates it
 * the way the database counts it, optionally as it will be stored once trimmed.
 */
import { Kind, TypeRegistry, Unsafe } from "@sinclair/typebox";
import {
  codePointLength,
  describeBounds,
  type TextBounds,
  textProblem,
  withinBounds,
} from "../text.ts";

/**
 * A schema may carry, under this key, a function that words the problem with a given value
 * better than its fixed `error` text can; request-context.ts uses it. A symbol key never reaches
 * the OpenAPI document.
 */
export const VALUE_MESSAGE: unique symbol = Symbol("petbooks.valueMessage");

const TEXT_KIND = "PetbooksText";
const TRIMMED_TEXT_KIND = "PetbooksTrimmedText";
const CHARACTERS_KIND = "PetbooksCharacters";

// TypeBox's own String counts `.length`, UTF-16 code units: 100 emoji would be 200. These kinds
// count code points, as PostgreSQL's char_length does, and refuse what text columns cannot hold.
TypeRegistry.Set<TextBounds>(
  TEXT_KIND,
  (schema, value) => typeof value === "string" && textProblem(value, schema) === undefined,
);
TypeRegistry.Set<TextBounds>(
  TRIMMED_TEXT_KIND,
  (schema, value) => typeof value === "string" && textProblem(value.trim(), schema) === undefined,
);
// Counts code points too, and nothing else: text that is only looked up (CharactersField).
TypeRegistry.Set<TextBounds>(
  CHARACTERS_KIND,
  (schema, value) => typeof value === "string" && withinBounds(codePointLength(value), schema),
);

export interface TextFieldOptions extends TextBounds {
  /**
   * Validated as the service will store it, trimmed (the service does the trimming, for every
   * caller): "  " is empty and padding does not count towards a length.
   */
  trimmed?: boolean;
  description?: string;
  examples?: string[];
}

/**
 * A string field, documented in OpenAPI as a plain `string` with its `minLength`/`maxLength`,
 * whose lengths are counted in characters (code points) and which may not contain NUL or an
 * unpaired surrogate. `field` names it in error messages.
 */
export function TextField(field: string, { trimmed = false, ...options }: TextFieldOptions = {}) {
  const error = `${field} must be a string of ${describeBounds(options)}, without NUL characters`;
  const normal = (value: string) => (trimmed ? value.trim() : value);
  return Unsafe<string>({
    ...options,
    type: "string",
    error,
    [VALUE_MESSAGE]: (value: unknown) => {
      const problem = typeof value === "string" ? textProblem(normal(value), options) : undefined;
      return problem ? `${field} ${problem}` : error;
    },
    [Kind]: trimmed ? TRIMMED_TEXT_KIND : TEXT_KIND,
  });
}

/**
 * A string whose length bounds count characters (code points), as JSON Schema's `maxLength`
 * does, and nothing else: for text that is only looked up, never stored (an id to delete), where
 * any string is an answerable request and the bound only keeps the request small.
 */
export function CharactersField(field: string, options: TextBounds & { description?: string }) {
  return Unsafe<string>({
    ...options,
    type: "string",
    error: `${field} must be a string of ${describeBounds(options)}`,
    [Kind]: CHARACTERS_KIND,
  });
}
