/**
 * Text as PostgreSQL stores it: lengths count characters (code points, like `char_length`), and
 * what it cannot store (NUL) or would store changed (an unpaired surrogate becomes U+FFFD) is
 * refused up front, as bad input, instead of failing or silently changing in the database.
 */

export interface TextBounds {
  minLength?: number | undefined;
  maxLength?: number | undefined;
}

/** Characters as PostgreSQL's `char_length` counts them: a surrogate pair is one. */
export function codePointLength(value: string): number {
  let length = value.length;
  for (let i = 0; i < value.length - 1; i++) {
    const unit = value.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        length--;
        i++;
      }
    }
  }
  return length;
}

/** The bounds as words: "1 to 100 characters", "at most 200 characters". */
export function describeBounds({ minLength = 0, maxLength }: TextBounds): string {
  if (maxLength === undefined) return `at least ${minLength} characters`;
  if (minLength === 0) return `at most ${maxLength} characters`;
  return `${minLength} to ${maxLength} characters`;
}

export const withinBounds = (length: number, { minLength = 0, maxLength }: TextBounds) =>
  length >= minLength && length <= (maxLength ?? Number.POSITIVE_INFINITY);

/** Why `value` cannot be stored as text within the bounds, or undefined when it can. */
export function textProblem(value: string, bounds: TextBounds): string | undefined {
  // PostgreSQL text cannot hold U+0000: the driver's insert would fail with a server error.
  if (value.includes("\u0000")) return "must not contain the NUL character (U+0000)";
  if (!value.isWellFormed()) return "must be valid Unicode (it has an unpaired surrogate)";
  if (!withinBounds(codePointLength(value), bounds))
    return `must be ${describeBounds(bounds)} long`;
  return undefined;
}
