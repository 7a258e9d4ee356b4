/**
 * Rejects requests under a path prefix without the right X-API-KEY, before their body is read.
 * It runs on every request (onRequest is global) and looks only at its own prefix.
 */
import { Elysia } from "elysia";
import { API_KEY_REQUIRED, UnauthorizedError } from "../errors.ts";
import { pathOf } from "../http/request-context.ts";
import { apiKeyChecker } from "./api-key.ts";

export const API_KEY_HEADER = "x-api-key";
/**
 * RFC 9110 §11.6.1: a 401 carries a challenge. API keys have no registered scheme, so this one
 * names its own and says where the key goes; browsers show no login dialog for an unknown scheme.
 */
export const API_KEY_CHALLENGE = 'ApiKey realm="petbooks", header="X-API-KEY"';

export function apiKeyGuard(prefix: string, apiKey: string) {
  const covers = (path: string) => path === prefix || path.startsWith(`${prefix}/`);
  const matches = apiKeyChecker(apiKey);
  return new Elysia({ name: "api-key-guard", seed: prefix }).onRequest(({ request }) => {
    if (covers(pathOf(request.url)) && !matches(request.headers.get(API_KEY_HEADER))) {
      throw new UnauthorizedError(API_KEY_REQUIRED, API_KEY_CHALLENGE);
    }
  });
}
