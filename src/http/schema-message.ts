import { VALUE_MESSAGE } from "./text-field.ts";

/**
 * The readable message of a schema for a value it refused: a function of the value under
 * VALUE_MESSAGE (see text-field.ts), or its fixed `error` text (see pets.schemas.ts).
 */
export function schemaMessage(schema: unknown, value: unknown): string | undefined {
  const s = schema as { error?: unknown; [VALUE_MESSAGE]?: unknown } | undefined;
  const fromValue = s?.[VALUE_MESSAGE];
  if (typeof fromValue === "function") {
    const text = fromValue(value);
    if (typeof text === "string") return text;
  }
  return typeof s?.error === "string" ? s.error : undefined;
}
