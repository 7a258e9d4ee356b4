import { describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { type RouteGuard, routeGuards } from "./route-guards.ts";

/** A guard that records the paths it was asked about and refuses `refused`. */
function recordingGuard(prefixes: string[], refused = new Set<string>()) {
  const checked: string[] = [];
  const guard: RouteGuard = {
    prefixes,
    check(request) {
      const path = new URL(request.url).pathname;
      checked.push(path);
      if (refused.has(path)) throw new Error("refused");
    },
  };
  return { guard, checked };
}

const appWith = (guards: RouteGuard[]) =>
  new Elysia()
    .use(routeGuards(guards))
    .onError(({ error }) => new Response((error as Error).message, { status: 401 }))
    .get("/*", ({ request }) => `ok ${new URL(request.url).pathname}`);

const get = (app: ReturnType<typeof appWith>, path: string) =>
  app
    .handle(new Request(`http://localhost${path}`))
    .then(async (r) => `${r.status} ${await r.text()}`);

describe("routeGuards", () => {
  test("a guard is asked about its prefix and the paths under it only", async () => {
    const pets = recordingGuard(["/pets"]);
    const books = recordingGuard(["/books", "/auth/me"]);
    const app = appWith([pets.guard, books.guard]);
    for (const path of [
      "/pets",
      "/pets/1/photo",
      "/petshop",
      "/books?q=x",
      "/auth/me",
      "/auth/token",
      "/",
    ]) {
      await get(app, path);
    }
    expect(pets.checked).toEqual(["/pets", "/pets/1/photo"]);
    expect(books.checked).toEqual(["/books", "/auth/me"]);
  });

  test("what a guard throws, or rejects with, answers instead of the route", async () => {
    const sync = recordingGuard(["/pets"], new Set(["/pets/secret"]));
    const rejecting: RouteGuard = {
      prefixes: ["/books"],
      check: async () => {
        await Promise.resolve();
        throw new Error("no token");
      },
    };
    const app = appWith([sync.guard, rejecting]);
    expect(await get(app, "/pets/secret")).toBe("401 refused");
    expect(await get(app, "/pets/open")).toBe("200 ok /pets/open");
    expect(await get(app, "/books")).toBe("401 no token");
  });

  test("two guards covering one path are refused when the app is built", () => {
    expect(() =>
      routeGuards([recordingGuard(["/books"]).guard, recordingGuard(["/books/x"]).guard]),
    ).toThrow("two guards cover /books/x");
    expect(() =>
      routeGuards([recordingGuard(["/pets"]).guard, recordingGuard(["/pets"]).guard]),
    ).toThrow();
    expect(() =>
      routeGuards([recordingGuard(["/pets"]).guard, recordingGuard(["/petshop"]).guard]),
    ).not.toThrow();
  });
});
