/**
 * The auth routes of the compiled binary keep their contract with bad input: register and the
 * token endpoint with each field at and past its bounds, wrong types, absent, null, unknown,
 * malformed bodies and wrong content types (the token endpoint answering as OAuth2 specifies),
 * and bearer tokens that are forged or odd though signed with the server's own secret. The case
 * tables are the ones the in-process tests run (src/auth/auth.cases.ts).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import {
  bodyCaseRequest,
  FORGED_TOKENS,
  REGISTER_ACCEPTED,
  REGISTER_REFUSED,
  signedToken,
  TOKEN_REQUESTS,
} from "../../src/auth/auth.cases.ts";
import { CONTRACT_JWT_SECRET, expectProblem, useContractServer } from "./harness.ts";

const server = useContractServer();
const credentials = {
  username: `c${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`,
  password: "correct horse battery staple",
};
let userId: string;
let token: string;

const post = (path: string, init: RequestInit) =>
  server.api(path, { ...init, method: "POST", apiKey: null });

async function tokenFor(user: { username: string; password: string }) {
  const res = await post("/auth/token", {
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "password", ...user }),
  });
  if (res.status !== 200) throw new Error(`token: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}

beforeAll(async () => {
  const res = await post("/auth/register", {
    headers: { "content-type": "application/json" },
    body: JSON.stringify(credentials),
  });
  if (res.status !== 201) throw new Error(`register: ${res.status} ${await res.text()}`);
  userId = ((await res.json()) as { id: string }).id;
  token = await tokenFor(credentials);
}, 60_000);

describe("POST /auth/register", () => {
  test.each(REGISTER_REFUSED.map((c) => [c.name, c] as const))("refuses %s", async (_, c) => {
    const problem = await expectProblem(await post("/auth/register", bodyCaseRequest(c)), c.status);
    if (c.field) expect(problem.errors?.map((e) => e.path)).toContain(c.field);
  });

  test.each(REGISTER_ACCEPTED.map((c) => [c.name, c] as const))("accepts %s", async (_, c) => {
    const body = c.body(crypto.randomUUID().replaceAll("-", "").slice(0, 8));
    const res = await post("/auth/register", {
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(201);
    // The password works exactly as given.
    expect(await tokenFor(body)).toBeString();
  });
});

describe("POST /auth/token", () => {
  test.each(TOKEN_REQUESTS.map((c) => [c.name, c] as const))("%s", async (_, c) => {
    const res = await post("/auth/token", bodyCaseRequest(c, credentials));
    if (c.expect.status === 400) {
      const text = await res.text();
      expect({ status: res.status, text }).toMatchObject({ status: 400 });
      // RFC 6749 §5.2: OAuth2's own error shape, as JSON, never cached.
      expect(res.headers.get("content-type")).toStartWith("application/json");
      expect(res.headers.get("cache-control")).toBe("no-store");
      const body = JSON.parse(text);
      expect(Object.keys(body).sort()).toEqual(["error", "error_description"]);
      expect(body.error).toBe(c.expect.error);
      expect(body.error_description).toBeString();
      expect(text).not.toContain(credentials.password);
    } else if (c.expect.status === 200) {
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("no-store");
      const body = (await res.json()) as { access_token: string; token_type: string };
      expect(body.token_type).toBe("bearer");
      const me = await server.api("/auth/me", {
        apiKey: null,
        headers: { authorization: `Bearer ${body.access_token}` },
      });
      expect(me.status).toBe(200);
    } else {
      const status = c.expect.status;
      const challenge = res.headers.get("www-authenticate");
      const problem = await expectProblem(res, status);
      if (status === 401) {
        expect(challenge).toStartWith('Bearer realm="petbooks"');
        expect(problem.detail).toBe("Wrong username or password.");
      }
    }
  });
});

describe("bearer tokens", () => {
  const guarded = ["/auth/me", "/books", `/books/${crypto.randomUUID()}`];

  test.each(Object.keys(FORGED_TOKENS))("%s is 401 with the Bearer challenge", async (name) => {
    const forge = FORGED_TOKENS[name] as (typeof FORGED_TOKENS)[string];
    const forged = forge({
      secret: CONTRACT_JWT_SECRET,
      userId,
      now: Math.floor(Date.now() / 1000),
    });
    for (const path of guarded) {
      const res = await server.api(path, {
        apiKey: null,
        headers: { authorization: `Bearer ${forged}` },
      });
      const challenge = res.headers.get("www-authenticate");
      const problem = await expectProblem(res, 401);
      expect(challenge).toStartWith('Bearer realm="petbooks"');
      expect(problem.code).toBe("unauthorized");
    }
  });

  test("a token of a user that does not exist is 401", async () => {
    const now = Math.floor(Date.now() / 1000);
    const stranger = signedToken(CONTRACT_JWT_SECRET, {
      sub: crypto.randomUUID(),
      iat: now,
      exp: now + 60,
    });
    const res = await server.api("/auth/me", {
      apiKey: null,
      headers: { authorization: `Bearer ${stranger}` },
    });
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
    await expectProblem(res, 401);
  });

  test("the user's own token, and one signed the same way with ordinary claims, work (the cases can fail)", async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const bearer of [
      token,
      signedToken(CONTRACT_JWT_SECRET, { sub: userId, iat: now, exp: now + 60 }),
    ]) {
      for (const path of guarded.slice(0, 2)) {
        const res = await server.api(path, {
          apiKey: null,
          headers: { authorization: `Bearer ${bearer}` },
        });
        expect(res.status).toBe(200);
      }
    }
  });
});

test("no request was an internal error, and no password reached the log", () => {
  const logs = server.logs();
  expect(logs).not.toContain("unhandled error");
  expect(logs).not.toContain('"status":500');
  expect(logs).not.toContain(credentials.password);
});
