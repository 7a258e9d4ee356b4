/**
 * Rejects requests under a path prefix without the right X-API-KEY, before their body is read.
 * It runs on every request (onRequest is global) and looks only at its own prefix.
 */
import { Elysia } from "elysia";
import { API_KEY_REQUIRED, UnauthorizedError } from "../errors.ts";
import { pathOf } from "../http/request-context.ts";
import { apiKeyChecker } from "./api-key.ts";

export const API_KEY_HEADER = "x-api-key";

export function apiKeyGuard(prefix: string, apiKey: string) {
  const covers = (path: string) => path === prefix || path.startsWith(`${prefix}/`);
  const matches = apiKeyChecker(apiKey);
  return new Elysia({ name: "api-key-guard", seed: prefix }).onRequest(({ request }) => {
    if (covers(pathOf(request.url)) && !matches(request.headers.get(API_KEY_HEADER))) {
      throw new UnauthorizedError(API_KEY_REQUIRED, "api-key");
    }
  });
}
