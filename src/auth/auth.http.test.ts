import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  createTestApp,
  jsonRequest,
  readJson,
  TEST_JWT_SECRET,
  type TestApp,
} from "../testing/app.ts";
import {
  bodyCaseRequest,
  FORGED_TOKENS,
  REGISTER_ACCEPTED,
  REGISTER_REFUSED,
  TOKEN_REQUESTS,
} from "./auth.cases.ts";
import { createTokenIssuer } from "./tokens.ts";

let t: TestApp;
let counter = 0;

// A fresh database and argon2 hashing are real work: generous limits, no speed assumed.
setDefaultTimeout(30_000);

beforeAll(async () => {
  t = await createTestApp();
}, 120_000);
afterAll(() => t?.close());

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

  test("wrong password and unknown user get the same 401, in comparable time", async () => {
    const user = await newUser();
    const attempt = async (username: string) => {
      const started = performance.now();
      const res = await t.request("/auth/token", tokenRequest(username, "wrong password"));
      return {
        ms: performance.now() - started,
        status: res.status,
        body: await readJson(res),
        challenge: res.headers.get("www-authenticate"),
      };
    };
    const wrongPassword = [
      await attempt(user.username),
      await attempt(user.username),
      await attempt(user.username),
    ];
    const unknownUser = [
      await attempt("nobody_here"),
      await attempt("nobody_here"),
      await attempt("nobody_here"),
    ];
    for (const r of [...wrongPassword, ...unknownUser]) {
      expect(r.status).toBe(401);
      expect(r.challenge).toStartWith("Bearer");
      expect(r.body.detail).toBe("Wrong username or password.");
    }
    const median = (xs: { ms: number }[]) => xs.map((x) => x.ms).sort((a, b) => a - b)[1] as number;
    // Both paths run one argon2id verification; without the dummy hash the unknown user would
    // answer in well under a tenth of the time.
    expect(median(unknownUser)).toBeGreaterThan(median(wrongPassword) * 0.4);
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
  });

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
