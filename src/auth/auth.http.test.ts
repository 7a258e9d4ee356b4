import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  createTestApp,
  jsonRequest,
  readJson,
  TEST_JWT_SECRET,
  type TestApp,
} from "../testing/app.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import {
  bodyCaseRequest,
  FORGED_TOKENS,
  REGISTER_ACCEPTED,
  REGISTER_REFUSED,
  TOKEN_REQUESTS,
} from "./auth.cases.ts";
import { type AuthServiceDeps, createAuthService } from "./auth.service.ts";
import { argon2idHasher, createHashQueue, type PasswordHasher } from "./hash-queue.ts";
import { createAuthLimits, createMemoryCounterStore } from "./rate-limit.ts";
import { createTokenIssuer } from "./tokens.ts";
import { createUsersRepository } from "./users.repository.ts";

let t: TestApp;
let counter = 0;

// A fresh database and argon2 hashing are real work: generous limits, no speed assumed.
setDefaultTimeout(30_000);

beforeAll(async () => {
  t = await createTestApp();
}, 120_000);
afterAll(() => t?.close(), TEARDOWN_TIMEOUT_MS);

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

async function newUser(password = "correct horse battery") {
  counter += 1;
  const username = `user_${counter}_${Date.now().toString(36)}`;
  const res = await t.request("/auth/register", jsonRequest("POST", { username, password }));
  expect(res.status).toBe(201);
  return { ...(await readJson(res)), password } as {
    id: string;
    username: string;
    created_at: string;
    password: string;
  };
}

function tokenRequest(
  username: string,
  password: string,
  as: "form" | "json" = "form",
): RequestInit {
  return as === "json"
    ? jsonRequest("POST", { grant_type: "password", username, password })
    : {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "password", username, password }).toString(),
      };
}

async function tokenFor(user: { username: string; password: string }) {
  const res = await t.request("/auth/token", tokenRequest(user.username, user.password));
  expect(res.status).toBe(200);
  return (await readJson(res)).access_token as string;
}

const withBearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

/** The app over the same database, with an AuthService built from `deps` (and TRUSTED_PROXIES). */
function appWith(deps: Partial<AuthServiceDeps>, trustedProxies: string[] = []) {
  const auth = createAuthService({
    users: createUsersRepository(t.database.db),
    tokens: createTokenIssuer(TEST_JWT_SECRET, 3600),
    ...deps,
  });
  const app = t.appWith({ authService: auth, trustedProxies });
  return { auth, app };
}

/** Records every password check of `inner`; `hold()` makes the next ones wait for `release()`. */
function spyHasher(inner: PasswordHasher) {
  const verifications: { password: string; hash: string }[] = [];
  let gate: Promise<void> | undefined;
  let release = () => {};
  const hasher: PasswordHasher = {
    hash: (password) => inner.hash(password),
    async verify(password, hash) {
      verifications.push({ password, hash });
      await gate;
      return inner.verify(password, hash);
    },
  };
  return {
    hasher,
    verifications: () => verifications,
    hold() {
      gate = new Promise((resolve) => {
        release = resolve;
      });
    },
    release: () => release(),
  };
}

describe("POST /auth/register", () => {
  test("creates a user and never returns the password or its hash", async () => {
    const res = await t.request(
      "/auth/register",
      jsonRequest("POST", { username: "Ada.L-1_x", password: "p".repeat(8) }),
    );
    expect(res.status).toBe(201);
    const user = await readJson(res);
    expect(Object.keys(user).sort()).toEqual(["created_at", "id", "username"]);
    expect(user.username).toBe("Ada.L-1_x");
    expect(JSON.stringify(user)).not.toContain("pppppppp");
  });

  test("a taken username is 409, whatever its case", async () => {
    const user = await newUser();
    const res = await t.request(
      "/auth/register",
      jsonRequest("POST", { username: user.username.toUpperCase(), password: "another password" }),
    );
    expect(res.status).toBe(409);
    expect((await readJson(res)).code).toBe("conflict");
  });

  test.each(REGISTER_REFUSED.map((c) => [c.name, c] as const))("refuses %s", async (_, c) => {
    const res = await t.request("/auth/register", bodyCaseRequest(c));
    expect(res.status).toBe(c.status);
    expect(res.headers.get("content-type")).toStartWith("application/problem+json");
    const problem = await readJson(res);
    if (c.field) expect(problem.errors.map((e: { path: string }) => e.path)).toContain(c.field);
  });

  test.each(REGISTER_ACCEPTED.map((c) => [c.name, c] as const))("accepts %s", async (_, c) => {
    const unique = crypto.randomUUID().replaceAll("-", "").slice(0, 8);
    const body = c.body(unique);
    const res = await t.request("/auth/register", jsonRequest("POST", body));
    expect(res.status).toBe(201);
    // The password works, as given.
    const token = await t.request("/auth/token", tokenRequest(body.username, body.password));
    expect(token.status).toBe(200);
  });
});

describe("POST /auth/token", () => {
  test.each(["form", "json"] as const)("issues a bearer token for a %s request", async (as) => {
    const user = await newUser();
    const res = await t.request("/auth/token", tokenRequest(user.username, user.password, as));
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = await readJson(res);
    expect(body).toMatchObject({ token_type: "bearer", expires_in: 3600 });
    const [, payload] = (body.access_token as string).split(".");
    const claims = JSON.parse(Buffer.from(payload as string, "base64url").toString());
    expect(claims.sub).toBe(user.id);
    expect(claims.exp - claims.iat).toBe(3600);
    const me = await t.request("/auth/me", withBearer(body.access_token));
    expect(await readJson(me)).toEqual({
      id: user.id,
      username: user.username,
      created_at: user.created_at,
    } as never);
  });

  test("the username is matched without regard to case", async () => {
    const user = await newUser();
    const res = await t.request(
      "/auth/token",
      tokenRequest(user.username.toUpperCase(), user.password),
    );
    expect(res.status).toBe(200);
  });

  test("wrong password and unknown user get the same 401, after the same one password check", async () => {
    // The mechanism, not the clock: the app's hasher is a spy around the real argon2id.
    const spy = spyHasher(argon2idHasher);
    const { app } = appWith({ passwords: spy.hasher });
    const user = await newUser();
    const attempt = async (username: string) => {
      const res = await app.handle(
        new Request("http://localhost/auth/token", tokenRequest(username, "wrong password")),
      );
      return {
        status: res.status,
        body: await readJson(res),
        challenge: res.headers.get("www-authenticate"),
      };
    };
    const wrongPassword = await attempt(user.username);
    const unknownUser = await attempt("nobody_here");
    for (const r of [wrongPassword, unknownUser]) {
      expect(r.status).toBe(401);
      expect(r.challenge).toBe('Bearer realm="petbooks"');
      expect(r.body.detail).toBe("Wrong username or password.");
    }
    // Only the request id tells them apart.
    expect({ ...unknownUser.body, request_id: "" }).toEqual({
      ...wrongPassword.body,
      request_id: "",
    });
    // Each ran exactly one verification: the user's hash, and a dummy argon2id hash of no one.
    const [forUser, forNobody] = spy.verifications();
    expect(spy.verifications()).toHaveLength(2);
    expect(forUser?.password).toBe("wrong password");
    expect(forNobody?.password).toBe("wrong password");
    expect(forNobody?.hash).toStartWith("$argon2id$");
    expect(forNobody?.hash).not.toBe(forUser?.hash);
  });

  test.each(TOKEN_REQUESTS.map((c) => [c.name, c] as const))("%s", async (_, c) => {
    const user = await newUser();
    const res = await t.request("/auth/token", bodyCaseRequest(c, user));
    const text = await res.text();
    expect({ status: res.status, text }).toMatchObject({ status: c.expect.status });
    const body = JSON.parse(text);
    if (c.expect.status === 400) {
      // RFC 6749 §5.2: OAuth2's own error answer, not a problem document.
      expect(res.headers.get("content-type")).toStartWith("application/json");
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(res.headers.get("x-request-id")).toBeString();
      expect(Object.keys(body).sort()).toEqual(["error", "error_description"]);
      expect(body.error).toBe(c.expect.error);
    } else if (c.expect.status === 200) {
      expect(body.token_type).toBe("bearer");
    } else {
      expect(res.headers.get("content-type")).toStartWith("application/problem+json");
    }
    if (c.expect.status === 401) expect(res.headers.get("www-authenticate")).toStartWith("Bearer");
    expect(text).not.toContain(user.password);
  });
});

describe("bearer token attack matrix", () => {
  let user: Awaited<ReturnType<typeof newUser>>;
  let valid: string;

  beforeAll(async () => {
    user = await newUser();
    valid = await tokenFor(user);
  }, SETUP_TIMEOUT_MS);

  const forged = {
    "no Authorization header": () => undefined,
    "an empty bearer": () => "Bearer ",
    "Basic credentials": () => `Basic ${Buffer.from("a:b").toString("base64")}`,
    "the token without the Bearer scheme": () => valid,
    "a malformed token": () => "Bearer not.a.jwt",
    garbage: () => "Bearer %%%",
    "a token signed with another secret": async () =>
      `Bearer ${(await createTokenIssuer("another-secret-0123456789-0123456789-ab", 3600).issue(user.id)).token}`,
    "an expired token": async () =>
      `Bearer ${(await createTokenIssuer(TEST_JWT_SECRET, -120).issue(user.id)).token}`,
    "alg none": () =>
      `Bearer ${b64url({ alg: "none", typ: "JWT" })}.${b64url({ sub: user.id, iat: 1, exp: 9999999999 })}.`,
    "alg none with the real signature": () => {
      const [, payload, signature] = valid.split(".");
      return `Bearer ${b64url({ alg: "none", typ: "JWT" })}.${payload}.${signature}`;
    },
    "a tampered subject": () => {
      const [header, , signature] = valid.split(".");
      const claims = {
        sub: Bun.randomUUIDv7(),
        iat: Math.floor(Date.now() / 1000),
        exp: 9999999999,
      };
      return `Bearer ${header}.${b64url(claims)}.${signature}`;
    },
    "HS512 signed with the same secret": async () => {
      const { SignJWT } = await import("jose");
      const token = await new SignJWT({ sub: user.id })
        .setProtectedHeader({ alg: "HS512" })
        .setIssuedAt()
        .setExpirationTime("1h")
        .sign(new TextEncoder().encode(TEST_JWT_SECRET));
      return `Bearer ${token}`;
    },
    "a valid token of a user that does not exist": async () =>
      `Bearer ${(await createTokenIssuer(TEST_JWT_SECRET, 3600).issue(Bun.randomUUIDv7())).token}`,
    ...Object.fromEntries(
      Object.entries(FORGED_TOKENS).map(([name, forge]) => [
        `shared case: ${name}`,
        () =>
          `Bearer ${forge({ secret: TEST_JWT_SECRET, userId: user.id, now: Math.floor(Date.now() / 1000) })}`,
      ]),
    ),
  } satisfies Record<string, () => string | undefined | Promise<string>>;

  test.each(Object.keys(forged))("%s is 401 with a Bearer challenge", async (name) => {
    const header = await forged[name as keyof typeof forged]();
    for (const path of ["/auth/me", "/books", `/books/${Bun.randomUUIDv7()}`]) {
      const res = await t.request(
        path,
        header === undefined ? {} : { headers: { authorization: header } },
      );
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toStartWith('Bearer realm="petbooks"');
      expect((await readJson(res)).code).toBe("unauthorized");
    }
  });

  test("401 comes before body validation", async () => {
    const res = await t.request("/books", {
      ...jsonRequest("POST", "{oops"),
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(401);
  });

  test("the valid token works, and stops working once its user is deleted", async () => {
    const other = await newUser();
    const token = await tokenFor(other);
    expect((await t.request("/books", withBearer(token))).status).toBe(200);
    const deleted = await t.request("/auth/me", { method: "DELETE", ...withBearer(token) });
    expect(deleted.status).toBe(204);
    const after = await t.request("/books", withBearer(token));
    expect(after.status).toBe(401);
    expect(after.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });
});

test("the OpenAPI document states the password policy, and the 429 and 503 with Retry-After", async () => {
  const doc = await readJson(t.request("/docs/json", { apiKey: null }));
  const register = doc.paths["/auth/register"].post;
  const password = register.requestBody.content["application/json"].schema.properties.password;
  expect(password).toMatchObject({ type: "string", minLength: 8, maxLength: 128, pattern: "\\S" });
  expect(password.description).toBe(
    "8 to 128 characters (code points), not only whitespace, without NUL characters.",
  );
  for (const path of ["/auth/register", "/auth/token"]) {
    for (const status of ["429", "503"]) {
      const response = doc.paths[path].post.responses[status];
      expect(Object.keys(response.headers)).toEqual(["Retry-After"]);
    }
  }
});

describe("abuse protection", () => {
  const limitsOf = (failures: number, attempts: number, now = () => Date.now()) =>
    createAuthLimits(
      createMemoryCounterStore(),
      {
        usernameFailures: { limit: failures, windowSeconds: 900 },
        addressAttempts: { limit: attempts, windowSeconds: 60 },
      },
      now,
    );

  test("past the failures of a username: 429, Retry-After, a problem document, no hashing", async () => {
    const spy = spyHasher(argon2idHasher);
    let clock = Date.now();
    const { app } = appWith({ passwords: spy.hasher, limits: limitsOf(2, 1000, () => clock) });
    const user = await newUser();
    const login = (password: string) =>
      app.handle(new Request("http://localhost/auth/token", tokenRequest(user.username, password)));
    for (let i = 0; i < 2; i++) expect((await login("wrong")).status).toBe(401);
    const checked = spy.verifications().length;
    clock += 300_000;
    // Even the right password: guessing must not go on once the limit is reached.
    const res = await login(user.password);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("600");
    expect(res.headers.get("content-type")).toStartWith("application/problem+json");
    const problem = await readJson(res);
    expect(problem).toMatchObject({ status: 429, code: "too_many_requests" });
    expect(problem.detail).toMatch(/failed sign-ins for this username/);
    expect(JSON.stringify(problem)).not.toContain(user.password);
    expect(spy.verifications()).toHaveLength(checked);
    clock += 600_000;
    expect((await login(user.password)).status).toBe(200);
  });

  test("per address, from the socket: X-Forwarded-For is ignored unless from a trusted proxy", async () => {
    for (const [trustedProxies, spoofed] of [
      [[], 429],
      [["127.0.0.1", "::1"], 401],
    ] as const) {
      const { app } = appWith({ limits: limitsOf(1000, 2) }, [...trustedProxies]);
      const server = app.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const url = `http://127.0.0.1:${server.server?.port}`;
        const login = (forwardedFor: string) => {
          const init = tokenRequest("nobody_here", "wrong password");
          return fetch(`${url}/auth/token`, {
            ...init,
            headers: { ...init.headers, "x-forwarded-for": forwardedFor },
          });
        };
        expect((await login("198.51.100.1")).status).toBe(401);
        const register = await fetch(`${url}/auth/register`, {
          ...jsonRequest("POST", {
            username: `reg_${crypto.randomUUID().slice(0, 8)}`,
            password: "long password",
          }),
          headers: { "content-type": "application/json", "x-forwarded-for": "198.51.100.1" },
        });
        expect(register.status).toBe(201);
        // A third attempt from the same client, wherever it claims to come from.
        const third = await login("198.51.100.2");
        expect({ trustedProxies, status: third.status }).toEqual({
          trustedProxies,
          status: spoofed,
        });
        if (third.status === 429) {
          expect(Number(third.headers.get("retry-after"))).toBeGreaterThan(0);
          expect((await readJson(third)).detail).toMatch(/from this address/);
        }
        // Through a trusted proxy, the client it names is the one counted.
        expect((await login("198.51.100.1")).status).toBe(429);
      } finally {
        await server.stop(true);
      }
    }
  });

  test("too many passwords waiting: 503 with Retry-After at once, not a pile-up", async () => {
    const spy = spyHasher(argon2idHasher);
    const hashQueue = createHashQueue({ concurrency: 1, maxQueued: 0, maxWaitMs: 3_000 });
    const { app } = appWith({ passwords: spy.hasher, hashQueue, limits: limitsOf(1000, 1000) });
    const user = await newUser();
    spy.hold();
    const login = () =>
      app.handle(new Request("http://localhost/auth/token", tokenRequest(user.username, "x")));
    const first = login();
    // Polled until the first check holds the only place.
    while (spy.verifications().length === 0) await Bun.sleep(5);
    const second = await login();
    expect(second.status).toBe(503);
    expect(second.headers.get("retry-after")).toBe("3");
    expect(await readJson(second)).toMatchObject({ code: "unavailable", status: 503 });
    spy.release();
    expect((await first).status).toBe(401);
  });
});
