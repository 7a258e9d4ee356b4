/**
 * The compiled binary when things go wrong, black-box: PostgreSQL out of reach (through a proxy
 * that cuts it off), a full photo disk (a 5 MiB tmpfs), browsers on other origins (CORS),
 * security headers on every kind of answer, the API key's 401 challenge, and `.env.example`'s
 * placeholder secrets refused at start.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { API_KEY_CHALLENGE } from "../../src/http/challenges.ts";
import { CORS_ALLOWED_HEADERS, CORS_EXPOSED_HEADERS } from "../../src/http/cors.ts";
import { DOCS_CSP, SECURITY_HEADERS } from "../../src/http/security-headers.ts";
import { PARTIAL_FILE_MAX_AGE_MS } from "../../src/storage/photo-storage.ts";
import { pngBytes, pngChunk } from "../../src/storage/png.ts";
import { buildBinary, runBinary, startServer, tempDataDir } from "../../src/testing/binary.ts";
import { createEmptyPostgresDatabase, withPostgres } from "../../src/testing/database.ts";
import { type OutageMode, startTcpProxy, type TcpProxy } from "../../src/testing/tcp-proxy.ts";
import { SETUP_TIMEOUT_MS } from "../../src/testing/timeouts.ts";
import { until } from "../../src/testing/until.ts";
import {
  CONTRACT_API_KEY,
  CONTRACT_JWT_SECRET,
  expectProblem,
  useContractServer,
} from "./harness.ts";

/** `until`, asking the binary at most every 100 ms. */
const poll = <T>(what: string, check: () => T | Promise<T>) => until(what, check, { everyMs: 100 });

const APP_ORIGIN = "https://app.example.com";
const OTHER_ORIGIN = "https://evil.example";
const server = useContractServer({ CORS_ORIGINS: `${APP_ORIGIN},http://localhost:5173` });

const root = join(import.meta.dir, "..", "..");

/** A server of its own (special env), on a fresh database; `stop` also drops that database. */
async function ownServer(env: Record<string, string>, dataDir = tempDataDir()) {
  let drop = async () => {};
  const full: Record<string, string> = {
    API_KEY: CONTRACT_API_KEY,
    JWT_SECRET: CONTRACT_JWT_SECRET,
    DATA_DIR: dataDir,
    LOG_LEVEL: "info",
    ...env,
  };
  if (process.env.DATABASE_URL && !env.DATABASE_URL) {
    const database = await createEmptyPostgresDatabase();
    full.DATABASE_URL = database.url;
    drop = database.drop;
  }
  const own = {
    running: await startServer(full),
    env: full,
    /** Starts it again on the same data (after `running.stop()`). */
    async restart() {
      own.running = await startServer(full);
      return own.running;
    },
    async stop() {
      if (own.running.proc.exitCode === null) await own.running.stop("SIGKILL");
      await drop();
    },
  };
  return own;
}

async function createPet(base: string): Promise<string> {
  const res = await fetch(`${base}/pets`, {
    method: "POST",
    headers: { "x-api-key": CONTRACT_API_KEY, "content-type": "application/json" },
    body: JSON.stringify({ name: "Fault", age: 3, type: "dog" }),
  });
  if (res.status !== 201) throw new Error(`POST /pets: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

function uploadPhoto(base: string, petId: string, bytes: Uint8Array) {
  const form = new FormData();
  form.append("file", new Blob([bytes], { type: "image/png" }), "photo.png");
  return fetch(`${base}/pets/${petId}/photo`, {
    method: "POST",
    headers: { "x-api-key": CONTRACT_API_KEY },
    body: form,
  });
}

/**
 * A PNG of `size` bytes: a valid signature and header, then noise as image data (an IDAT chunk),
 * so the metadata stripper stores it whole (bytes after IEND would go).
 */
function bigPng(size: number): Uint8Array<ArrayBuffer> {
  const noise = new Uint8Array(size - 8 - 25 - 12 - 12);
  crypto.getRandomValues(noise.subarray(0, 65_536));
  for (let at = 65_536; at < noise.length; at += 65_536) noise.copyWithin(at, 0, 65_536);
  const png = pngBytes();
  return new Uint8Array([
    ...png.subarray(0, 8 + 25),
    ...pngChunk("IDAT", noise),
    ...pngChunk("IEND", new Uint8Array()),
  ]);
}

function expectSecurityHeaders(res: Response, csp = SECURITY_HEADERS["content-security-policy"]) {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    expect(`${name}: ${res.headers.get(name)}`).toBe(
      `${name}: ${name === "content-security-policy" ? csp : value}`,
    );
  }
}

const corsHeaderNames = (res: Response) =>
  [...res.headers.keys()].filter((name) => name.startsWith("access-control-"));

describe("security headers", () => {
  let photoUrl = "";

  beforeAll(async () => {
    const pet = await createPet(server.url);
    const res = await uploadPhoto(server.url, pet, pngBytes([0, 128, 0], 4));
    if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`);
    photoUrl = ((await res.json()) as { url: string }).url;
  }, 60_000);

  test.each([
    ["a list of pets", "/pets", {}, 200],
    ["a 401 problem", "/pets", { apiKey: null }, 401],
    ["a 404 of an unknown route", "/no/such/route", {}, 404],
    ["a 422 problem", "/pets?limit=0", {}, 422],
    ["a probe", "/healthz", { apiKey: null }, 200],
    ["the OpenAPI document", "/docs/json", { apiKey: null }, 200],
    ["a Swagger UI asset", "/docs/assets/swagger-ui.css", { apiKey: null }, 200],
  ] as const)("are on %s", async (_, path, init, status) => {
    const res = await server.api(path, init);
    await res.arrayBuffer();
    expect(res.status).toBe(status);
    expectSecurityHeaders(res);
  });

  test("are on a photo, which stays an image nobody can sniff into a page", async () => {
    const res = await fetch(photoUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expectSecurityHeaders(res);
    await res.arrayBuffer();
  });

  test("the Swagger UI page has its own policy, with no inline script or style allowed", async () => {
    const res = await server.api("/docs", { apiKey: null });
    expect(res.status).toBe(200);
    expectSecurityHeaders(res, DOCS_CSP);
    expect(DOCS_CSP).toContain("script-src 'self'");
    expect(DOCS_CSP).not.toContain("unsafe-inline");
    expect(await res.text()).not.toMatch(/<script>/);
  });
});

describe("the API key's 401", () => {
  test.each([
    ["no key", "GET", "/pets", null],
    ["a wrong key", "GET", "/pets", "wrong-key-0123456789"],
    ["no key, photo upload", "POST", "/pets/0193a8f2-6d1e-7c3a-9b1e-5f2d8c4a7e10/photo", null],
  ] as const)("carries a WWW-Authenticate challenge (%s)", async (_, method, path, apiKey) => {
    const res = await server.api(path, { method, apiKey });
    expect(res.headers.get("www-authenticate")).toBe(API_KEY_CHALLENGE);
    await expectProblem(res, 401);
  });
});

const preflight = (origin: string, method = "POST"): RequestInit & { apiKey: null } => ({
  method: "OPTIONS",
  apiKey: null,
  headers: {
    origin,
    "access-control-request-method": method,
    "access-control-request-headers": "content-type,x-api-key",
  },
});

describe("CORS (CORS_ORIGINS lists the app's origin)", () => {
  test.each(["/pets", "/books", "/pets/0193a8f2-6d1e-7c3a-9b1e-5f2d8c4a7e10/photo"])(
    "a preflight of %s is a 204 before any auth",
    async (path) => {
      const res = await server.api(path, preflight(APP_ORIGIN));
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
      expect(res.headers.get("access-control-allow-methods")).toContain("POST");
      expect(res.headers.get("access-control-allow-headers")).toBe(CORS_ALLOWED_HEADERS);
      expect(res.headers.get("access-control-allow-credentials")).toBeNull();
      expect(res.headers.get("vary")).toBe("Origin");
      expect(await res.text()).toBe("");
    },
  );

  test("real answers, errors included, let the app read them and their headers", async () => {
    for (const [apiKey, status] of [
      [CONTRACT_API_KEY, 200],
      [null, 401],
    ] as const) {
      const res = await server.api("/pets", { apiKey, headers: { origin: APP_ORIGIN } });
      await res.arrayBuffer();
      expect(res.status).toBe(status);
      expect(res.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
      expect(res.headers.get("access-control-expose-headers")).toBe(CORS_EXPOSED_HEADERS);
      expect(res.headers.get("vary")).toBe("Origin");
    }
  });

  test("an origin not listed gets no CORS header, and its preflight meets the guard", async () => {
    const pre = await server.api("/pets", preflight(OTHER_ORIGIN));
    expect(corsHeaderNames(pre)).toEqual([]);
    await expectProblem(pre, 401);
    const res = await server.api("/pets", { headers: { origin: OTHER_ORIGIN } });
    await res.arrayBuffer();
    expect(res.status).toBe(200);
    expect(corsHeaderNames(res)).toEqual([]);
    // Without an Origin, none either.
    const plain = await server.api("/pets");
    await plain.arrayBuffer();
    expect(corsHeaderNames(plain)).toEqual([]);
  });
});

describe("CORS off (CORS_ORIGINS unset)", () => {
  let own: Awaited<ReturnType<typeof ownServer>> | undefined;
  beforeAll(async () => {
    own = await ownServer({});
  }, SETUP_TIMEOUT_MS);
  afterAll(() => own?.stop(), SETUP_TIMEOUT_MS);

  test("no CORS header anywhere, and a preflight is a request like any other", async () => {
    const base = (own as NonNullable<typeof own>).running.url;
    const pre = await fetch(`${base}/pets`, preflight(APP_ORIGIN));
    expect(corsHeaderNames(pre)).toEqual([]);
    await expectProblem(pre, 401);
    const res = await fetch(`${base}/pets`, {
      headers: { origin: APP_ORIGIN, "x-api-key": CONTRACT_API_KEY },
    });
    await res.arrayBuffer();
    expect(res.status).toBe(200);
    expect(corsHeaderNames(res)).toEqual([]);
    expect(res.headers.get("vary")).toBeNull();
    expectSecurityHeaders(res);
  });
});

describe("placeholder secrets", () => {
  const example = (name: string) => {
    const text = readFileSync(join(root, ".env.example"), "utf8");
    const value = new RegExp(`^${name}=(.+)$`, "m").exec(text)?.[1];
    if (!value) throw new Error(`.env.example has no ${name}`);
    return value;
  };

  test.each([
    ["serve", ["API_KEY", "JWT_SECRET"]],
    ["grpc", ["JWT_SECRET"]],
  ] as const)(
    "%s refuses .env.example's values, naming each, echoing none",
    async (command, names) => {
      const env = {
        API_KEY: example("API_KEY"),
        JWT_SECRET: example("JWT_SECRET"),
        DATA_DIR: tempDataDir(),
      };
      const { code, stdout, stderr } = await runBinary([command], env);
      expect(code).toBe(1);
      expect(stdout).toBe("");
      for (const name of names) expect(stderr).toContain(`${name} is still a placeholder`);
      expect(stderr).toContain("openssl rand -hex 32");
      expect(stderr).not.toContain(env.API_KEY);
      expect(stderr).not.toContain(env.JWT_SECRET);
      // One line, as every startup error.
      expect(stderr.trim().split("\n")).toHaveLength(1);
    },
  );
});

/** Mounts a tmpfs of `size` at `dir`; false where this machine does not let us (not root). */
function mountTmpfs(dir: string, size: string): boolean {
  const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], {
    stdout: "ignore",
    stderr: "ignore",
  });
  return mount.success;
}
const unmount = (dir: string) =>
  Bun.spawnSync(["umount", dir], { stdout: "ignore", stderr: "ignore" }).success;

/** Whether a tmpfs can be mounted here: tried once on a folder of its own, unmounted at once. */
function canMountTmpfs(): boolean {
  const probe = tempDataDir();
  const mounted = mountTmpfs(probe, "1m");
  if (mounted) unmount(probe);
  return mounted;
}
// Mounted by the tests' own beforeAll (hooks of tests filtered out do not run, nor unmount).
const smallDisk = canMountTmpfs();
if (!smallDisk) {
  process.stderr.write(
    "faults.contract: cannot mount a tmpfs here (needs root and mount): the full-disk test of the " +
      "binary is skipped; photo-storage.test.ts and request-context.test.ts still cover ENOSPC.\n",
  );
}

// Plain `describe` and skipped tests: a skipped describe reports its hooks as skipped tests too.
describe("a full photo disk (DATA_DIR/photos on a 5 MiB tmpfs)", () => {
  const test_ = test.skipIf(!smallDisk);
  const PHOTO_BYTES = 1_500_000;
  let own: Awaited<ReturnType<typeof ownServer>> | undefined;
  let petId = "";
  const stored: { url: string; bytes: Uint8Array<ArrayBuffer> }[] = [];

  const photosDataDir = tempDataDir();
  const photosDir = join(photosDataDir, "photos");
  let mounted = false;

  beforeAll(async () => {
    if (!smallDisk) return;
    // The photos alone on a small disk; the embedded database (DATA_DIR/pgdata) stays off it.
    mkdirSync(photosDir);
    mounted = mountTmpfs(photosDir, "5m");
    if (!mounted) throw new Error(`could not mount a tmpfs at ${photosDir}`);
    own = await ownServer({}, photosDataDir);
    petId = await createPet(own.running.url);
  }, SETUP_TIMEOUT_MS);
  afterAll(async () => {
    await own?.stop();
    if (mounted) unmount(photosDir);
    rmSync(photosDataDir, { recursive: true, force: true });
  }, SETUP_TIMEOUT_MS);

  const base = () => (own as NonNullable<typeof own>).running.url;

  test_(
    "1.5 MB uploads: 201 while they fit, then 507 problems, and no partial file left",
    async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const bytes = bigPng(PHOTO_BYTES);
        const res = await uploadPhoto(base(), petId, bytes);
        statuses.push(res.status);
        if (res.status === 201) {
          stored.push({ url: ((await res.json()) as { url: string }).url, bytes });
        } else {
          const problem = await expectProblem(res, 507);
          expect(problem).toMatchObject({
            code: "insufficient_storage",
            title: "Insufficient Storage",
          });
        }
      }
      expect(statuses).toEqual([201, 201, 201, 507, 507, 507]);
      expect(readdirSync(photosDir).filter((name) => name.endsWith(".partial"))).toEqual([]);
      expect(readdirSync(photosDir)).toHaveLength(3);
      // The refused attempts took no room: a small photo still fits.
      const small = await uploadPhoto(base(), petId, pngBytes([1, 2, 3], 8));
      expect(small.status).toBe(201);
      await small.arrayBuffer();
    },
  );

  test_("what was accepted is served whole, and only that is listed", async () => {
    expect(stored).toHaveLength(3);
    for (const { url, bytes } of stored) {
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes);
    }
    const list = await fetch(`${base()}/pets?has_photos=true&limit=100`, {
      headers: { "x-api-key": CONTRACT_API_KEY },
    });
    const pets = ((await list.json()) as { items: { id: string; photos: unknown[] }[] }).items;
    expect(pets.find((p) => p.id === petId)?.photos).toHaveLength(4);
    expect(own?.running.logs()).toContain('"msg":"photo storage is full"');
  });

  test_("serve sweeps what interrupted uploads left at start, and says how many", async () => {
    const running = (own as NonNullable<typeof own>).running;
    expect(await running.stop("SIGTERM")).toBe(0);
    const old = (Date.now() - PARTIAL_FILE_MAX_AGE_MS - 60_000) / 1000;
    for (const name of [".crashed-1.png.partial", ".crashed-2.jpg.partial"]) {
      writeFileSync(join(photosDir, name), "half a photo");
      utimesSync(join(photosDir, name), old, old);
    }
    const restarted = await (own as NonNullable<typeof own>).restart();
    expect(restarted.logs()).toContain(
      '"msg":"removed partial photo files left by interrupted uploads"',
    );
    expect(restarted.logs()).toContain('"removed":2');
    expect(readdirSync(photosDir).filter((name) => name.endsWith(".partial"))).toEqual([]);
    // On a new port: the photo's path there.
    const res = await fetch(
      `${restarted.url}${new URL((stored[0] as { url: string }).url).pathname}`,
    );
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  });
});

const onPostgres = Boolean(process.env.DATABASE_URL);

describe("PostgreSQL out of reach (through a proxy; needs DATABASE_URL)", () => {
  const test_ = test.skipIf(!onPostgres);
  let proxy: TcpProxy | undefined;
  let own: Awaited<ReturnType<typeof ownServer>> | undefined;
  let drop = async () => {};
  let bearer = "";
  const acceptedPets: string[] = [];

  beforeAll(async () => {
    if (!onPostgres) return;
    const database = await createEmptyPostgresDatabase();
    drop = database.drop;
    const url = new URL(database.url);
    proxy = startTcpProxy({ hostname: url.hostname, port: Number(url.port || 5432) });
    url.hostname = "127.0.0.1";
    url.port = String(proxy.port);
    // A short timeout, so a blackholed connection attempt gives up soon.
    own = await ownServer({ DATABASE_URL: url.toString(), DATABASE_TIMEOUT_MS: "1000" });
    bearer = await registerAndLogIn(own.running.url);
    acceptedPets.push(await createPet(own.running.url));
  }, SETUP_TIMEOUT_MS);
  afterAll(async () => {
    await own?.stop();
    proxy?.stop();
    await drop();
  }, SETUP_TIMEOUT_MS);

  const base = () => (own as NonNullable<typeof own>).running.url;

  /** A request that must answer well within this deadline, or it counts as hanging. */
  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${base()}${path}`, { ...init, signal: AbortSignal.timeout(30_000) });
  const withKey = (init: RequestInit = {}): RequestInit => ({
    ...init,
    headers: { "x-api-key": CONTRACT_API_KEY, ...(init.headers as Record<string, string>) },
  });
  const newPet = () =>
    call(
      "/pets",
      withKey({
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "Outage", age: 1, type: "cat" }),
      }),
    );
  /** Who tries to register while the database is away: none of it may reach the logs. */
  const outageUser = {
    username: `outage${crypto.randomUUID().slice(0, 8)}`,
    password: "pa55 phrase in an outage",
  };
  const register = () =>
    call("/auth/register", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(outageUser),
    });
  // A query of its own each time, so no cached page can answer instead of the database.
  const listBooks = () =>
    call(`/books?q=${crypto.randomUUID()}`, { headers: { authorization: `Bearer ${bearer}` } });

  type Sent = readonly [what: string, send: () => Promise<Response>];

  /** Every request answers 503 with Retry-After and a problem document, none hangs. */
  async function expectAllUnavailable(requests: Sent[]) {
    const answers = await Promise.all(
      requests.map(async ([what, send]) => {
        const res = await send();
        if (what === "POST /pets" && res.status === 201) {
          // Should not happen; but whatever was accepted must still be there afterwards.
          acceptedPets.push(((await res.json()) as { id: string }).id);
          return `${what} 201`;
        }
        const retryAfter = res.headers.get("retry-after");
        const problem = await expectProblem(res, 503).catch((err: Error) => err);
        if (problem instanceof Error) return `${what}: ${problem.message}`;
        return `${what} ${problem.status} ${problem.code} retry-after=${retryAfter}`;
      }),
    );
    expect(answers).toEqual(requests.map(([what]) => `${what} 503 unavailable retry-after=5`));
  }

  /** The proxy forwards again, and every route works again without a restart. */
  async function resumeAndRecover() {
    (proxy as TcpProxy).resume();
    await poll("GET /pets to work again", async () => (await call("/pets", withKey())).ok);
    await poll("/readyz to be 200 again", async () => (await call("/readyz")).status === 200);
    await poll("GET /books to work again", async () => (await listBooks()).ok);
    const created = await newPet();
    expect(created.status).toBe(201);
    acceptedPets.push(((await created.json()) as { id: string }).id);
  }

  test_.each(["refuse", "blackhole"] as OutageMode[])(
    "%s: requests answer 503 with Retry-After at once, /readyz too; all recover without a restart",
    async (mode) => {
      (proxy as TcpProxy).cut(mode);
      const requests = [
        ...Array.from({ length: 8 }, () => ["GET /pets", () => call("/pets", withKey())] as const),
        ...Array.from({ length: 8 }, () => ["GET /books", listBooks] as const),
        ...Array.from({ length: 8 }, () => ["POST /pets", newPet] as const),
        ["POST /auth/register", register] as const,
        ["GET /readyz", () => call("/readyz")] as const,
        ["GET /readyz?verbose", () => call("/readyz?verbose")] as const,
      ];
      await expectAllUnavailable(requests);
      await resumeAndRecover();
    },
    SETUP_TIMEOUT_MS,
  );

  test_(
    "silent (open connections answer nothing, as a hung server or a dead link): 503 within the bound, not a hang",
    async () => {
      // The requests before take connections from the pool, which then stay open and silent.
      expect((await call("/pets", withKey())).status).toBe(200);
      expect((await listBooks()).status).toBe(200);
      (proxy as TcpProxy).silence();
      const requests = [
        ...Array.from({ length: 4 }, () => ["GET /pets", () => call("/pets", withKey())] as const),
        ...Array.from({ length: 4 }, () => ["GET /books", listBooks] as const),
        ...Array.from({ length: 4 }, () => ["POST /pets", newPet] as const),
        ["GET /readyz", () => call("/readyz")] as const,
      ];
      await expectAllUnavailable(requests);
      await resumeAndRecover();
    },
    SETUP_TIMEOUT_MS,
  );

  test_("nothing accepted was lost, and the outage was logged as such, not as a bug", async () => {
    const res = await call("/pets?limit=100", withKey());
    const ids = ((await res.json()) as { items: { id: string }[] }).items.map((p) => p.id);
    for (const id of acceptedPets) expect(ids).toContain(id);
    const logs = (own as NonNullable<typeof own>).running.logs();
    expect(logs).toContain('"msg":"database unavailable"');
    expect(logs).not.toContain('"msg":"unhandled error"');
    expect(logs).not.toContain(CONTRACT_API_KEY);
    // A failed statement is logged without its parameters: no password hash, no username.
    expect(logs).toContain("Failed query: ");
    expect(logs).not.toContain("params:");
    expect(logs).not.toContain("$argon2");
    expect(logs).not.toContain(outageUser.username);
  });
});

describe("the database dropped under a running server (needs DATABASE_URL)", () => {
  const test_ = test.skipIf(!onPostgres);
  let own: Awaited<ReturnType<typeof ownServer>> | undefined;
  let drop = async () => {};
  let bearer = "";

  beforeAll(async () => {
    if (!onPostgres) return;
    const database = await createEmptyPostgresDatabase();
    drop = database.drop;
    own = await ownServer({ DATABASE_URL: database.url });
    bearer = await registerAndLogIn(own.running.url);
    await createPet(own.running.url);
    const name = new URL(database.url).pathname.slice(1);
    await withPostgres(process.env.DATABASE_URL as string, (admin) =>
      admin.unsafe(`drop database "${name}" with (force)`),
    );
    drop = async () => {};
  }, SETUP_TIMEOUT_MS);
  afterAll(async () => {
    await own?.stop();
    await drop();
  }, SETUP_TIMEOUT_MS);

  test_(
    "every route that needs it answers 503 with Retry-After, and the log names why, as an error",
    async () => {
      const base = (own as NonNullable<typeof own>).running.url;
      const call = (path: string, init: RequestInit = {}) =>
        fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(30_000) });
      const key = { "x-api-key": CONTRACT_API_KEY };
      const requests: [string, () => Promise<Response>][] = [
        ["GET /pets", () => call("/pets", { headers: key })],
        ["GET /pets", () => call("/pets", { headers: key })],
        [
          "POST /pets",
          () =>
            call("/pets", {
              method: "POST",
              headers: { ...key, "content-type": "application/json" },
              body: JSON.stringify({ name: "Gone", age: 1, type: "dog" }),
            }),
        ],
        [
          "GET /books",
          () =>
            call(`/books?q=${crypto.randomUUID()}`, {
              headers: { authorization: `Bearer ${bearer}` },
            }),
        ],
        ["GET /readyz", () => call("/readyz")],
      ];
      const answers: string[] = [];
      for (const [what, send] of requests) {
        const res = await send();
        const retryAfter = res.headers.get("retry-after");
        const problem = await expectProblem(res, 503).catch((err: Error) => err);
        answers.push(
          problem instanceof Error
            ? `${what}: ${problem.message}`
            : `${what} ${problem.code} retry-after=${retryAfter}`,
        );
      }
      expect(answers).toEqual(requests.map(([what]) => `${what} unavailable retry-after=5`));
      const logs = (own as NonNullable<typeof own>).running.logs();
      expect(logs).toContain('"level":"error","msg":"database refused the connection"');
      expect(logs).toContain('"reason":"the database does not exist (3D000)"');
      expect(logs).not.toContain('"msg":"unhandled error"');
    },
    SETUP_TIMEOUT_MS,
  );
});

async function registerAndLogIn(base: string): Promise<string> {
  const username = `u${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const password = "correct horse battery staple";
  const register = await fetch(`${base}/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (register.status !== 201) throw new Error(`register: ${register.status}`);
  const token = await fetch(`${base}/auth/token`, {
    method: "POST",
    body: new URLSearchParams({ grant_type: "password", username, password }),
  });
  if (token.status !== 200) throw new Error(`token: ${token.status}`);
  return ((await token.json()) as { access_token: string }).access_token;
}

describe("export-pets losing PostgreSQL mid-export (needs DATABASE_URL)", () => {
  const test_ = test.skipIf(!onPostgres);
  let drop = async () => {};
  let url = "";

  beforeAll(async () => {
    if (!onPostgres) return;
    const database = await createEmptyPostgresDatabase();
    drop = database.drop;
    url = database.url;
    const migrated = await runBinary(["migrate"], { DATABASE_URL: url, LOG_LEVEL: "warn" });
    if (migrated.code !== 0) throw new Error(`migrate: ${migrated.stderr}`);
    // Megabytes of JSON: far more than the pipe and the socket hold, so the export is still
    // reading when its connection goes.
    await withPostgres(url, (sql) =>
      sql.unsafe(
        "insert into pets (id, name, age, type) select gen_random_uuid(), 'Pet ' || n, n % 30, 'dog' from generate_series(1, 100000) n",
      ),
    );
  }, SETUP_TIMEOUT_MS);
  afterAll(() => drop(), SETUP_TIMEOUT_MS);

  test_(
    "its backend terminated (an admin, a failover): exit code 1 and one line on stderr naming why",
    async () => {
      const proc = Bun.spawn([await buildBinary(), "export-pets"], {
        env: { PATH: process.env.PATH ?? "", DATABASE_URL: url, LOG_LEVEL: "warn" },
        stdout: "pipe",
        stderr: "pipe",
      });
      const stdout = proc.stdout.getReader();
      // The export has begun; unread, its output soon fills the pipe and holds it mid-COPY.
      expect((await stdout.read()).done).toBe(false);
      const name = new URL(url).pathname.slice(1);
      const terminated = await withPostgres(
        process.env.DATABASE_URL as string,
        (sql) => sql`select pg_terminate_backend(pid) as done from pg_stat_activity
          where datname = ${name} and pid <> pg_backend_pid()`,
      );
      expect(terminated.length).toBeGreaterThan(0);
      while (!(await stdout.read()).done) {
        // drained to its end
      }
      const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
      expect(code).toBe(1);
      expect(stderr.trim().split("\n")).toEqual([expect.stringMatching(/^petbooks: \S/)]);
      expect(stderr).toMatch(/terminat|CONNECTION_CLOSED/);
    },
    SETUP_TIMEOUT_MS,
  );

  test_(
    "a reader that goes away mid-export (`| head`): exit code 141, as SIGPIPE, and nothing on stderr",
    async () => {
      const proc = Bun.spawn(
        [
          "bash",
          "-c",
          'set -o pipefail; "$0" export-pets | head -c 100 >/dev/null',
          await buildBinary(),
        ],
        {
          env: { PATH: process.env.PATH ?? "", DATABASE_URL: url, LOG_LEVEL: "warn" },
          stderr: "pipe",
        },
      );
      // pipefail: the pipeline's status is the export's (head's is 0).
      const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
      expect(code).toBe(141);
      expect(stderr).toBe("");
    },
    SETUP_TIMEOUT_MS,
  );

  test_(
    "the network gone silent mid-export: exit code 1 once EXPORT_STALL_TIMEOUT_MS passes, not a hang",
    async () => {
      const target = new URL(url);
      const proxy = startTcpProxy({ hostname: target.hostname, port: Number(target.port || 5432) });
      target.hostname = "127.0.0.1";
      target.port = String(proxy.port);
      const proc = Bun.spawn([await buildBinary(), "export-pets"], {
        env: {
          PATH: process.env.PATH ?? "",
          DATABASE_URL: target.toString(),
          EXPORT_STALL_TIMEOUT_MS: "2000",
          LOG_LEVEL: "warn",
        },
        stdout: "pipe",
        stderr: "pipe",
      });
      try {
        const stdout = proc.stdout.getReader();
        expect((await stdout.read()).done).toBe(false);
        proxy.silence();
        while (!(await stdout.read()).done) {
          // what crossed before the silence, then nothing
        }
        const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
        expect(code).toBe(1);
        expect(stderr.trim().split("\n")).toEqual([
          "petbooks: export abandoned: the database sent no pets for 2 s (EXPORT_STALL_TIMEOUT_MS)",
        ]);
      } finally {
        proc.kill("SIGKILL");
        proxy.stop();
      }
    },
    SETUP_TIMEOUT_MS,
  );
});

test(
  "a Redis that accepts connections and never answers fails serve's start, naming it",
  async () => {
    const proxy = startTcpProxy({ hostname: "127.0.0.1", port: 1 });
    proxy.cut("blackhole");
    try {
      const result = await runBinary(["serve"], {
        API_KEY: CONTRACT_API_KEY,
        JWT_SECRET: CONTRACT_JWT_SECRET,
        DATA_DIR: tempDataDir(),
        PORT: "0",
        REDIS_URL: `redis://127.0.0.1:${proxy.port}/0`,
        LOG_LEVEL: "warn",
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `cannot reach Redis at redis://127.0.0.1:${proxy.port}/0: connect and PING: no answer in 2000 ms`,
      );
      // Each attempt on a connection of its own.
      expect(proxy.accepted).toBeGreaterThanOrEqual(5);
    } finally {
      proxy.stop();
    }
  },
  SETUP_TIMEOUT_MS,
);
