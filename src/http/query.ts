/** Query-string rules every route shares. */
import { ValidationError } from "../errors.ts";

/**
 * A `transform` hook: each query parameter at most once. `?limit=1&limit=2` is ambiguous (the
 * router would quietly keep one of them), so it is a 422 naming the parameter.
 */
export function singleValuedQuery({ request }: { request: Request }): void {
  const start = request.url.indexOf("?");
  if (start === -1) return;
  const seen = new Set<string>();
  for (const key of new URLSearchParams(request.url.slice(start + 1)).keys()) {
    if (seen.has(key)) {
      throw new ValidationError("Invalid query.", [
        { path: `/${key}`, message: `${key} is given more than once` },
      ]);
    }
    seen.add(key);
  }
}
