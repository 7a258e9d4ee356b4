/**
 * Requires a valid bearer token under the given path prefixes, before the body is read, and
 * remembers the user for the handler (`currentUser`).
 */
import { Elysia } from "elysia";
import { pathOf } from "../http/request-context.ts";
import type { User } from "./auth.model.ts";
import type { AuthService } from "./auth.service.ts";

const users = new WeakMap<Request, User>();

export function bearerGuard(auth: AuthService, prefixes: string[]) {
  const covers = (path: string) => prefixes.some((p) => path === p || path.startsWith(`${p}/`));
  const remember = async (request: Request) => {
    users.set(request, await auth.authenticate(request.headers.get("authorization")));
  };
  // Not an async function: a request the guard does not cover (every /pets one) makes no promise
  // of its own. Elysia still awaits the hook (its source reads as async to Elysia's isAsync, as it
  // must: a covered request's promise has to be awaited), so a request pays one await for it.
  return new Elysia({ name: "bearer-guard", seed: prefixes }).onRequest(({ request }) =>
    covers(pathOf(request.url)) ? remember(request) : undefined,
  );
}

/** The authenticated user of a request the guard covered. */
export function currentUser(request: Request): User {
  const user = users.get(request);
  if (!user) throw new Error("currentUser() on a route the bearer guard does not cover");
  return user;
}
