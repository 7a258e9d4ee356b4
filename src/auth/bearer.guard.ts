/**
 * Requires a valid bearer token under the given path prefixes (a RouteGuard), and remembers the
 * user for the handler (`currentUser`).
 */
import type { RouteGuard } from "../http/route-guards.ts";
import type { User } from "./auth.model.ts";
import type { AuthService } from "./auth.service.ts";

const users = new WeakMap<Request, User>();

export function bearerGuard(auth: AuthService, prefixes: string[]): RouteGuard {
  return {
    prefixes,
    async check(request) {
      users.set(request, await auth.authenticate(request.headers.get("authorization")));
    },
  };
}

/** The authenticated user of a request the guard covered. */
export function currentUser(request: Request): User {
  const user = users.get(request);
  if (!user) throw new Error("currentUser() on a route the bearer guard does not cover");
  return user;
}
