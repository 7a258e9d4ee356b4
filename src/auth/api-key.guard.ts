/** Rejects requests under a path prefix without the right X-API-KEY (a RouteGuard). */
import { API_KEY_REQUIRED, UnauthorizedError } from "../errors.ts";
import type { RouteGuard } from "../http/route-guards.ts";
import { apiKeyChecker } from "./api-key.ts";

export const API_KEY_HEADER = "x-api-key";

export function apiKeyGuard(prefix: string, apiKey: string): RouteGuard {
  const matches = apiKeyChecker(apiKey);
  return {
    prefixes: [prefix],
    check(request) {
      if (!matches(request.headers.get(API_KEY_HEADER))) {
        throw new UnauthorizedError(API_KEY_REQUIRED, "api-key");
      }
    },
  };
}
