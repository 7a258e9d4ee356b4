import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { Elysia, t } from "elysia";
import { apiKeyGuard } from "../auth/api-key.guard.ts";
import { NotFoundError } from "../errors.ts";
import { createLogger } from "../logger.ts";
import { createLocalPhotoStorage } from "../storage/photo-storage.ts";
import { makeTempDir } from "../testing/temp.ts";
import { TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { API_KEY_CHALLENGE } from "./challenges.ts";
import { CORS_ALLOWED_HEADERS, CORS_EXPOSED_HEADERS, createCors } from "./cors.ts";
import { InFlight } from "./in-flight.ts";
import { requestContext } from "./request-context.ts";
import { routeGuards } from "./route-guards.ts";
import { SECURITY_HEADERS } from "./security-headers.ts";

const KEY = "request-context-key-0123";
const APP_ORIGIN = "https://app.example.com";
const photoDir = makeTempDir("petbooks-request-context-");

const errnoError = (code: string) =>
  Object.assign(new Error(`${code}: simulated`), { code, errno: -28, syscall: "write" });

interface Observed {
  path: string;
  route: string | undefined;
  status: number;
  value: unknown;
}

function app(options: { cors?: string[] } = {}) {
  const logLines: string[] = [];
  const observed: Observed[] = [];
  const inFlight = new InFlight();
  const full = createLocalPhotoStorage(photoDir, "http://x", {
    // Writes some of the file, then fails as a full disk does.
    writeFile: async (path, bytes) => {
      await Bun.write(path, bytes.subarray(0, 3));
      throw errnoError("ENOSPC");
    },
  });
  const instance = new Elysia()
    .use(
      requestContext({
        logger: createLogger("info", (line) => logLines.push(line)),
        maxBodyBytes: () => 1024,
        inFlight,
        cors: createCors(options.cors ?? []),
        observe: (request, route, status, _startedAt, value) =>
          observed.push({ path: new URL(request.url).pathname, route, status, value }),
      }),
    )
    .get("/ok", () => ({ ok: true }))
    .get("/items/:id", () => "an item")
    // A handler whose answer breaks its own response schema (the types would not let it).
    .get("/bad-shape", () => "not a number" as unknown as number, { response: t.Number() })
    .get("/missing", () => {
      throw new NotFoundError("No such thing.");
    })
    .get("/own-headers", () => new Response("x", { headers: { "content-type": "image/png" } }))
    // As postgres.js fails under Drizzle: Drizzle's error, the driver's as its cause.
    .get("/db-down", () => {
      throw new Error("Failed query: select 1", { cause: errnoError("ECONNREFUSED") });
    })
    .get("/db-slow", () => {
      throw Object.assign(new Error("canceling statement due to statement timeout"), {
        code: "57014",
      });
    })
    .post("/disk-full", async () => {
      await full.save(full.newFileName({ extension: "png", contentType: "image/png" }), png);
      return "stored";
    })
    .get("/read-only", async () => {
      const readOnly = createLocalPhotoStorage(photoDir, "http://x", {
        writeFile: async () => {
          throw errnoError("EROFS");
        },
      });
      await readOnly.save("x.png", png);
    })
    .get("/broken", () => {
      throw new Error("a bug");
    })
    .use(routeGuards([apiKeyGuard("/pets", KEY)]))
    .get("/pets", () => []);
  return {
    inFlight,
    logLines,
    observed,
    handle: (path: string, init?: RequestInit) =>
      instance.handle(new Request(`http://localhost${path}`, init)),
  };
}
const png = new Uint8Array(64).fill(7);

afterAll(async () => {
  // Nothing may be left behind by the failed writes (the temp folder goes after the run).
  expect(readdirSync(photoDir)).toEqual([]);
}, TEARDOWN_TIMEOUT_MS);

const problemOf = async (res: Response) => {
  expect(res.headers.get("content-type")).toStartWith("application/problem+json");
  return (await res.json()) as { status: number; code: string; detail: string; request_id: string };
};

describe("security headers", () => {
  test.each([
    ["a JSON answer", "/ok", 200],
    ["a problem document", "/missing", 404],
    ["an unknown route", "/nowhere", 404],
    ["a route's own Response", "/own-headers", 200],
    ["an internal error", "/broken", 500],
    ["a 401 of a guard", "/pets", 401],
  ])("are on %s", async (_, path, status) => {
    const res = await app().handle(path);
    expect(res.status).toBe(status);
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
      expect(res.headers.get(name)).toBe(value);
    }
  });
});

describe("a database that cannot be reached", () => {
  test.each([
    ["refused", "/db-down"],
    ["statement timeout", "/db-slow"],
  ])("(%s) is a 503 problem with Retry-After, logged as a warning", async (_, path) => {
    const a = app();
    const res = await a.handle(path);
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5");
    expect(await problemOf(res)).toMatchObject({
      status: 503,
      code: "unavailable",
      detail: "The database is not reachable.",
    });
    const warning = a.logLines.find((l) => l.includes('"database unavailable"'));
    expect(warning).toContain('"level":"warn"');
    expect(a.logLines.join("")).not.toContain("unhandled error");
  });

  test("a bug is still a 500 without Retry-After", async () => {
    const res = await app().handle("/broken");
    expect(res.status).toBe(500);
    expect(res.headers.get("retry-after")).toBeNull();
  });
});

describe("photo storage that refuses a write", () => {
  test("a full disk is a 507 problem, and the partial file is gone at once", async () => {
    const a = app();
    const res = await a.handle("/disk-full", { method: "POST" });
    expect(res.status).toBe(507);
    expect(await problemOf(res)).toMatchObject({
      status: 507,
      code: "insufficient_storage",
      detail: "There is no room left to store the photo; try again later.",
    });
    expect(readdirSync(photoDir)).toEqual([]);
    expect(a.logLines.find((l) => l.includes("photo storage is full"))).toContain("ENOSPC");
  });

  test("a read-only disk is a 503 problem with Retry-After", async () => {
    const res = await app().handle("/read-only");
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("60");
    expect(await problemOf(res)).toMatchObject({ code: "unavailable" });
  });
});

describe("API key guard", () => {
  test("its 401 carries a WWW-Authenticate challenge (RFC 9110 §11.6.1)", async () => {
    const res = await app().handle("/pets");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(API_KEY_CHALLENGE);
    expect((await app().handle("/pets", { headers: { "x-api-key": KEY } })).status).toBe(200);
  });
});

describe("the end of every request", () => {
  test("is observed once, with the route's template, the status and the handler's own value", async () => {
    const a = app();
    await a.handle("/items/42");
    await a.handle("/missing");
    await a.handle("/no/such/path");
    await a.handle("/pets");
    await a.handle("/bad-shape");
    const seen = a.observed.map(({ path, route, status }) => ({ path, route, status }));
    expect(seen).toEqual([
      { path: "/items/42", route: "/items/:id", status: 200 },
      { path: "/missing", route: "/missing", status: 404 },
      { path: "/no/such/path", route: undefined, status: 404 },
      { path: "/pets", route: undefined, status: 401 },
      { path: "/bad-shape", route: "/bad-shape", status: 422 },
    ]);
    expect(a.observed[0]?.value).toBe("an item");
    // The answer that went out was a problem document, not what the handler returned.
    expect(a.observed[4]?.value).toBeInstanceOf(Response);
    expect(a.inFlight.count).toBe(0);
    expect(a.logLines.filter((l) => l.includes('"msg":"request"'))).toHaveLength(5);
  });
});

const preflight = (origin: string, method = "GET") => ({
  method: "OPTIONS",
  headers: {
    origin,
    "access-control-request-method": method,
    "access-control-request-headers": "x-api-key",
  },
});
const corsHeaders = (res: Response) =>
  [...res.headers.keys()].filter((name) => name.startsWith("access-control-"));

describe("CORS", () => {
  test("off by default: no CORS header, and a preflight meets the guard like any request", async () => {
    const a = app();
    const res = await a.handle("/pets", preflight(APP_ORIGIN));
    expect(res.status).toBe(401);
    expect(corsHeaders(res)).toEqual([]);
    expect(res.headers.get("vary")).toBeNull();
    expect(corsHeaders(await a.handle("/ok", { headers: { origin: APP_ORIGIN } }))).toEqual([]);
  });

  test("a listed origin's preflight is a 204 before the auth guard, and logged", async () => {
    const a = app({ cors: [APP_ORIGIN] });
    const res = await a.handle("/pets", preflight(APP_ORIGIN, "DELETE"));
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    expect(res.headers.get("access-control-allow-methods")).toContain("DELETE");
    expect(res.headers.get("access-control-allow-headers")).toBe(CORS_ALLOWED_HEADERS);
    expect(res.headers.get("access-control-max-age")).toBe("600");
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    expect(res.headers.get("vary")).toBe("Origin");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    // Answered in onRequest, it still ends once: nothing is left counted as in flight.
    expect(a.inFlight.count).toBe(0);
    expect(a.logLines.find((l) => l.includes('"status":204'))).toContain('"method":"OPTIONS"');
    // Answered before routing: no route to label it with in the metrics.
    expect(a.observed).toEqual([]);
  });

  test("real answers to a listed origin expose what a browser app needs, errors too", async () => {
    const a = app({ cors: [APP_ORIGIN, "http://localhost:5173"] });
    for (const [path, status] of [
      ["/ok", 200],
      ["/pets", 401],
      ["/db-down", 503],
    ] as const) {
      const res = await a.handle(path, { headers: { origin: "http://localhost:5173" } });
      expect(res.status).toBe(status);
      expect(res.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
      expect(res.headers.get("access-control-expose-headers")).toBe(CORS_EXPOSED_HEADERS);
      expect(res.headers.get("vary")).toBe("Origin");
    }
  });

  test("an origin not listed gets no CORS header, and its preflight is not answered early", async () => {
    const a = app({ cors: [APP_ORIGIN] });
    const evil = "https://evil.example";
    const pre = await a.handle("/pets", preflight(evil));
    expect(pre.status).toBe(401);
    expect(corsHeaders(pre)).toEqual([]);
    const res = await a.handle("/ok", { headers: { origin: evil } });
    expect(corsHeaders(res)).toEqual([]);
    // The answer depends on the origin, so caches must know.
    expect(res.headers.get("vary")).toBe("Origin");
    expect(corsHeaders(await a.handle("/ok"))).toEqual([]);
    // A plain OPTIONS (no Access-Control-Request-Method) is no preflight.
    const plain = await a.handle("/pets", { method: "OPTIONS", headers: { origin: APP_ORIGIN } });
    expect(plain.status).toBe(401);
  });

  test("`*` allows any origin, without credentials", async () => {
    const a = app({ cors: ["*"] });
    const pre = await a.handle("/pets", preflight("https://anyone.example"));
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    expect(pre.headers.get("access-control-allow-credentials")).toBeNull();
    const res = await a.handle("/ok", { headers: { origin: "https://anyone.example" } });
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
  });
});
