/**
 * The auth routes of the compiled binary keep their contract with bad input: register and the
 * token endpoint with each field at and past its bounds, wrong types, absent, null, unknown,
 * malformed bodies and wrong content types (the token endpoint answering as OAuth2 specifies),
 * and bearer tokens that are forged or odd though signed with the server's own secret. The case
 * tables are the ones the in-process tests run (src/auth/auth.cases.ts).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { createClient } from "redis";
import {
  bodyCaseRequest,
  FORGED_TOKENS,
  REGISTER_ACCEPTED,
  REGISTER_REFUSED,
  signedToken,
  TOKEN_REQUESTS,
} from "../../src/auth/auth.cases.ts";
import { redisTestPrefix } from "../../src/testing/redis-keys.ts";
import { SETUP_TIMEOUT_MS } from "../../src/testing/timeouts.ts";
import {
  CONTRACT_JWT_SECRET,
  type ContractServer,
  expectProblem,
  useContractServer,
} from "./harness.ts";

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
}, SETUP_TIMEOUT_MS);

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

// ---------------------------------------------------------------------------------------------
// Abuse protection: each describe runs a server of its own, with limits small enough to reach.

const login = (target: ContractServer, username: string, password: string, forwardedFor?: string) =>
  target.api("/auth/token", {
    method: "POST",
    apiKey: null,
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      ...(forwardedFor && { "x-forwarded-for": forwardedFor }),
    },
    body: new URLSearchParams({ grant_type: "password", username, password }),
  });

async function registered(target: ContractServer, forwardedFor?: string) {
  const user = {
    username: `a${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`,
    password: "correct horse battery staple",
  };
  const res = await target.api("/auth/register", {
    method: "POST",
    apiKey: null,
    headers: {
      "content-type": "application/json",
      ...(forwardedFor && { "x-forwarded-for": forwardedFor }),
    },
    body: JSON.stringify(user),
  });
  if (res.status !== 201) throw new Error(`register: ${res.status} ${await res.text()}`);
  return user;
}

/** A 429 as documented: a problem document with a Retry-After of whole seconds within `max`. */
async function expectTooMany(res: Response, max: number) {
  const retryAfter = res.headers.get("retry-after");
  const problem = await expectProblem(res, 429);
  expect(problem.code).toBe("too_many_requests");
  expect(retryAfter).toMatch(/^\d+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number(retryAfter)).toBeLessThanOrEqual(max);
  return problem;
}

describe("failures per username (AUTH_USERNAME_FAILURES=3)", () => {
  const limited = useContractServer({
    AUTH_USERNAME_FAILURES: "3",
    AUTH_ADDRESS_ATTEMPTS: "1000",
    // One hash at a time, and room to wait: a flood takes long to work through.
    PASSWORD_HASH_CONCURRENCY: "1",
    PASSWORD_HASH_QUEUE: "1000",
    PASSWORD_HASH_WAIT_MS: "600000",
  });

  test("after 3 failures: 429 with Retry-After, even for the right password; others unaffected", async () => {
    const user = await registered(limited);
    for (let i = 0; i < 3; i++)
      await expectProblem(await login(limited, user.username, "wrong"), 401);
    const problem = await expectTooMany(await login(limited, user.username, user.password), 900);
    expect(problem.detail).toContain("for this username");
    // Case does not make another username.
    await expectTooMany(await login(limited, user.username.toUpperCase(), user.password), 900);
    const other = await registered(limited);
    expect((await login(limited, other.username, other.password)).status).toBe(200);
  });

  test("no other spelling escapes the lock: a name with U+0130 (İ) finds nobody", async () => {
    const user = {
      username: `i${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`,
      password: "correct horse battery staple",
    };
    const created = await limited.api("/auth/register", {
      method: "POST",
      apiKey: null,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(user),
    });
    expect(created.status).toBe(201);
    for (let i = 0; i < 3; i++)
      await expectProblem(await login(limited, user.username, "wrong"), 401);
    await expectTooMany(await login(limited, user.username, user.password), 900);
    // PostgreSQL's lower() would make it "i": the user, under another per-username count.
    const dotted = `\u0130${user.username.slice(1)}`;
    await expectProblem(await login(limited, dotted, user.password), 401);
  });

  test("a success forgets the failures", async () => {
    const user = await registered(limited);
    for (let i = 0; i < 2; i++)
      await expectProblem(await login(limited, user.username, "wrong"), 401);
    expect((await login(limited, user.username, user.password)).status).toBe(200);
    for (let i = 0; i < 3; i++)
      await expectProblem(await login(limited, user.username, "wrong"), 401);
    await expectTooMany(await login(limited, user.username, "wrong"), 900);
  });

  test("the 429 comes before any hashing: it answers while a flood of logins waits to be hashed", async () => {
    const user = await registered(limited);
    for (let i = 0; i < 3; i++) await login(limited, user.username, "wrong");
    // 20 wrong passwords for other usernames, hashed one at a time: the last of them answers only
    // after 20 argon2id checks. Whatever the machine's speed, the locked username's 429, which
    // needs none, comes first; had it been hashed first it would queue behind them all.
    let pending = 20;
    const flood = Array.from({ length: 20 }, (_, i) =>
      login(limited, `flood_${i}_${user.username}`, "wrong").then(async (res) => {
        pending -= 1;
        await res.body?.cancel();
        return res.status;
      }),
    );
    const locked = await login(limited, user.username, user.password);
    const stillPending = pending;
    await expectTooMany(locked, 900);
    expect(stillPending).toBeGreaterThan(0);
    expect(new Set(await Promise.all(flood))).toEqual(new Set([401]));
  });
});

describe("attempts per address, with TRUSTED_PROXIES (AUTH_ADDRESS_ATTEMPTS=3)", () => {
  const proxied = useContractServer({
    AUTH_ADDRESS_ATTEMPTS: "3",
    TRUSTED_PROXIES: "127.0.0.1, ::1",
    PASSWORD_HASH_CONCURRENCY: "1",
    PASSWORD_HASH_QUEUE: "0",
  });

  test("each client named by the proxy is counted apart; registrations count too", async () => {
    const client = "198.51.100.10";
    await registered(proxied, client);
    await expectProblem(await login(proxied, "nobody_here", "wrong", client), 401);
    await expectProblem(await login(proxied, "nobody_here", "wrong", `6.6.6.6, ${client}`), 401);
    const problem = await expectTooMany(await login(proxied, "nobody_here", "x", client), 60);
    expect(problem.detail).toContain("from this address");
    // Another client behind the same proxy is not affected.
    await expectProblem(await login(proxied, "nobody_here", "wrong", "198.51.100.11"), 401);
  });

  test("too many passwords to check at once: 503 with Retry-After, at once", async () => {
    // One hash at a time and no queue: of logins sent together, those that arrive while a hash
    // runs are refused. Rounds are repeated until one lands so (the first does, unless hashing
    // is instantaneous); every answer is either a 401 or a well-formed 503.
    let refused: Response | undefined;
    for (let round = 0; round < 5 && !refused; round++) {
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          login(proxied, "nobody_here", "wrong", `198.51.100.${100 + round * 8 + i}`),
        ),
      );
      for (const res of answers) {
        if (res.status === 503 && !refused) refused = res;
        else {
          expect([401, 503]).toContain(res.status);
          await res.body?.cancel();
        }
      }
    }
    if (!refused) throw new Error("no login was refused with 503");
    const retryAfter = refused.headers.get("retry-after");
    const problem = await expectProblem(refused, 503);
    expect(problem.code).toBe("unavailable");
    expect(problem.detail).toContain("too busy checking passwords");
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  });
});

describe("attempts per address, without TRUSTED_PROXIES (AUTH_ADDRESS_ATTEMPTS=3)", () => {
  const direct = useContractServer({ AUTH_ADDRESS_ATTEMPTS: "3" });

  test("X-Forwarded-For changes nothing: every attempt counts under the socket's address", async () => {
    for (let i = 0; i < 3; i++) {
      await expectProblem(await login(direct, "nobody_here", "wrong", `198.51.100.${i}`), 401);
    }
    await expectTooMany(await login(direct, "nobody_here", "wrong", "198.51.100.99"), 60);
    const register = await direct.api("/auth/register", {
      method: "POST",
      apiKey: null,
      headers: { "content-type": "application/json", "x-forwarded-for": "203.0.113.1" },
      body: JSON.stringify({ username: "fresh_name", password: "long password" }),
    });
    await expectTooMany(register, 60);
  });

  test("requests refused before any hashing (bad input) are not counted, and still answered", async () => {
    // Past the limit already (above): refusals that cost nothing keep their own answers.
    const res = await direct.api("/auth/register", {
      method: "POST",
      apiKey: null,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "fresh_name", password: "short" }),
    });
    await expectProblem(res, 422);
  });

  test("no password or token reached the log", () => {
    expect(direct.logs()).not.toContain("correct horse battery staple");
    expect(direct.logs()).not.toContain("unhandled error");
  });
});

describe.skipIf(!process.env.REDIS_URL)("two replicas sharing Redis (REDIS_URL)", () => {
  // Each replica has a database of its own: usernames are counted before any lookup, so the
  // count can only be shared through Redis. The address limit is out of the way: 127.0.0.1 is
  // shared with every other run on this Redis.
  const shared = {
    REDIS_URL: process.env.REDIS_URL ?? "",
    // Keys of their own, removed after the run (the default prefix would be left behind).
    REDIS_KEY_PREFIX: redisTestPrefix(),
    AUTH_USERNAME_FAILURES: "4",
    AUTH_ADDRESS_ATTEMPTS: "1000000",
    // Past the default 50 ms, a replica counts on its own (failing open): a stall of the machine
    // at the wrong moment would then let a login through that this test expects refused.
    REDIS_TIMEOUT_MS: "2000",
  };
  const one = useContractServer(shared);
  const two = useContractServer(shared);

  test("count failures together; a success on one forgets them on both", async () => {
    const username = `r${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    for (const replica of [one, two, one, two]) {
      await expectProblem(await login(replica, username, "wrong"), 401);
    }
    await expectTooMany(await login(one, username, "wrong"), 900);
    await expectTooMany(await login(two, username, "wrong"), 900);
    expect(one.logs()).toContain('"counted_in":"redis"');
    // A success on one replica forgets the failures on both.
    const user = await registered(one);
    for (const replica of [one, two, one]) {
      await expectProblem(await login(replica, user.username, "wrong"), 401);
    }
    expect((await login(one, user.username, user.password)).status).toBe(200);
    for (let i = 0; i < 4; i++) {
      await expectProblem(await login(two, user.username, "wrong"), 401);
    }
    await expectTooMany(await login(one, user.username, user.password), 900);
  });

  test("the counters are under REDIS_KEY_PREFIX", async () => {
    const redis = createClient({ url: shared.REDIS_URL });
    await redis.connect();
    try {
      const keys = await redis.keys(`${shared.REDIS_KEY_PREFIX}ratelimit:*`);
      expect(keys.length).toBeGreaterThan(0);
    } finally {
      redis.destroy();
    }
  });
});

describe("the password policy", () => {
  test.each([
    ["7 characters", "p".repeat(7), "password must be 8 to 128 characters long"],
    ["only whitespace", " \t ".repeat(4), "password must not be only whitespace"],
  ])("%s is 422 with a clear message", async (_, password, message) => {
    const res = await post("/auth/register", {
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: `p${crypto.randomUUID().slice(0, 8)}`, password }),
    });
    const problem = await expectProblem(res, 422);
    expect(problem.errors).toEqual([{ path: "/password", message }]);
  });
});
