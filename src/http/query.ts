/** Query-string rules every route shares. */
import { ValidationError } from "../errors.ts";
import { LIST_LIMIT_MAX, OFFSET_MAX } from "./pagination.ts";

/**
 * Integer parameters must be plain decimal digits. The schema alone would decode them with
 * JavaScript's `+value`, which also takes `0x10`, `+5`, `1e1` and surrounding spaces.
 */
const DECIMAL_PARAMETERS = new Map([
  ["limit", `limit must be an integer from 1 to ${LIST_LIMIT_MAX}`],
  ["offset", `offset must be an integer from 0 to ${OFFSET_MAX}`],
]);
const DECIMAL = /^-?[0-9]+$/;

/**
 * A `transform` hook: each query parameter at most once. `?limit=1&limit=2` is ambiguous (the
 * router would quietly keep one of them), so it is a 422 naming the parameter. Integer
 * parameters that are not written in decimal digits are a 422 too; the schema checks the range.
 */
export function singleValuedQuery({ request }: { request: Request }): void {
  const start = request.url.indexOf("?");
  if (start === -1) return;
  const seen = new Set<string>();
  for (const [key, value] of new URLSearchParams(request.url.slice(start + 1))) {
    const notDecimal = DECIMAL_PARAMETERS.get(key);
    if (notDecimal !== undefined && !DECIMAL.test(value)) {
      throw new ValidationError("Invalid query.", [{ path: `/${key}`, message: notDecimal }]);
    }
    if (seen.has(key)) {
      throw new ValidationError("Invalid query.", [
        { path: `/${key}`, message: `${key} is given more than once` },
      ]);
    }
    seen.add(key);
  }
}
