import { describe, expect, test } from "bun:test";
import { allowedMethods, type RouteEntry } from "./allowed-methods.ts";

const ROUTES: RouteEntry[] = [
  { method: "GET", path: "/pets" },
  { method: "POST", path: "/pets" },
  { method: "DELETE", path: "/pets" },
  { method: "POST", path: "/pets/:id/photo" },
  { method: "GET", path: "/books/:id" },
  { method: "PATCH", path: "/books/:id" },
  { method: "PUT", path: "/books/:id" },
  { method: "GET", path: "/files/*" },
  { method: "GET", path: "/maybe/:id?" },
  { method: "PROPFIND", path: "/dav" },
  { method: "COPY", path: "/dav" },
];

describe("allowedMethods", () => {
  const methodsOf = allowedMethods(() => ROUTES);

  test.each([
    ["/pets", ["GET", "HEAD", "POST", "DELETE"]],
    ["/pets/", ["GET", "HEAD", "POST", "DELETE"]],
    ["/pets/123/photo", ["POST"]],
    ["/books/abc", ["GET", "HEAD", "PUT", "PATCH"]],
    ["/files/a/b/c", ["GET", "HEAD"]],
    ["/maybe", ["GET", "HEAD"]],
    ["/maybe/1", ["GET", "HEAD"]],
    // Not among ORDER: after those, by name.
    ["/dav", ["COPY", "PROPFIND"]],
  ])("%s answers %p", (path, methods) => {
    expect(methodsOf(path)).toEqual(methods);
  });

  test.each([
    "/",
    "/pet",
    "/pets/123",
    "/pets//photo",
    "/pets/123/photo/x",
    "/books",
    "/books/",
    "/maybe/1/2",
  ])("%s has no route", (path) => {
    expect(methodsOf(path)).toEqual([]);
  });

  test("reads the routes once, when first asked", () => {
    const routes: RouteEntry[] = [];
    let reads = 0;
    const lazy = allowedMethods(() => {
      reads++;
      return routes;
    });
    routes.push({ method: "GET", path: "/late" });
    expect(lazy("/late")).toEqual(["GET", "HEAD"]);
    expect(lazy("/other")).toEqual([]);
    expect(reads).toBe(1);
  });
});
