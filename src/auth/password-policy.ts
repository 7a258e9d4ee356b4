/**
 * What a new password must be: 8 to 128 characters (code points, so an emoji is one), not only
 * whitespace, no NUL. The upper bound keeps every hash cheap to compute; argon2id's cost is
 * set by its parameters, not by the password, but nobody needs more. Only registration checks
 * this: users who chose a shorter password under an older rule can still log in.
 */
import { Kind, TypeRegistry, Unsafe } from "@sinclair/typebox";
import { VALUE_MESSAGE } from "../http/text-field.ts";
import { describeBounds, textProblem } from "../text.ts";

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 128;
const BOUNDS = { minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH };

/** Why `value` is not an acceptable new password, or undefined when it is. */
export function passwordProblem(value: string): string | undefined {
  const problem = textProblem(value, BOUNDS);
  if (problem) return `password ${problem}`;
  if (!/\S/u.test(value)) return "password must not be only whitespace";
  return undefined;
}

const PASSWORD_KIND = "PetbooksPassword";
TypeRegistry.Set(
  PASSWORD_KIND,
  (_, value) => typeof value === "string" && passwordProblem(value) === undefined,
);

const RULE = `${describeBounds(BOUNDS)} (code points), not only whitespace, without NUL characters`;

/** The password of a registration, documented in OpenAPI as a string with its bounds. */
export function PasswordField(options: { examples?: string[] } = {}) {
  const error = `password must be ${RULE}`;
  return Unsafe<string>({
    type: "string",
    ...BOUNDS,
    // JSON Schema patterns are not anchored: "has a character other than whitespace".
    pattern: "\\S",
    description: `${RULE[0]?.toUpperCase()}${RULE.slice(1)}.`,
    ...options,
    error,
    [VALUE_MESSAGE]: (value: unknown) =>
      (typeof value === "string" ? passwordProblem(value) : undefined) ?? error,
    [Kind]: PASSWORD_KIND,
  });
}
