/**
 * The feature modules' guards (API key, bearer token) in one onRequest hook: the request's path
 * is read once, and only the guard whose prefix covers it runs, before the body is read.
 */
import { Elysia } from "elysia";
import { pathOf } from "./request-context.ts";

export interface RouteGuard {
  /** Each prefix covers itself and every path under it (`/pets`: `/pets`, `/pets/1/photo`). */
  readonly prefixes: readonly string[];
  /** Throws, or rejects, to refuse the request. */
  check(request: Request): void | Promise<void>;
}

const covers = (prefix: string, path: string) => path === prefix || path.startsWith(`${prefix}/`);

interface GuardedPrefix {
  prefix: string;
  guard: RouteGuard;
}

/** Two guards on one path would leave which one decides to the order of the modules. */
function assertNoOverlap(routes: readonly GuardedPrefix[]): void {
  for (const a of routes) {
    for (const b of routes) {
      if (a.guard !== b.guard && covers(a.prefix, b.prefix)) {
        throw new Error(`two guards cover ${b.prefix}: ${a.prefix} and ${b.prefix}`);
      }
    }
  }
}

export function routeGuards(guards: readonly RouteGuard[]) {
  const routes = guards.flatMap((guard) => guard.prefixes.map((prefix) => ({ prefix, guard })));
  assertNoOverlap(routes);
  const plugin = new Elysia({ name: "route-guards", seed: routes.map((r) => r.prefix) });
  if (routes.length === 0) return plugin;
  return plugin.onRequest(({ request }) => {
    const path = pathOf(request.url);
    for (const { prefix, guard } of routes) {
      if (covers(prefix, path)) return guard.check(request);
    }
  });
}
