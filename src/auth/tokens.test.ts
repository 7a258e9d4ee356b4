import { describe, expect, test } from "bun:test";
import { FORGED_TOKENS, signedToken } from "./auth.cases.ts";
import { claimsProblem, createTokenIssuer, DEFAULT_CLOCK_SKEW_SECONDS } from "./tokens.ts";

const SECRET = "tokens-test-secret-0123456789-0123456789";
const USER = "0199a7c6-1234-7abc-8def-0123456789ab";
const TTL = 3600;
/** A fixed instant (2026-01-01T00:00:00Z), moved by hand: no test here waits for time to pass. */
const START = 1_767_225_600;

function fakeClock(seconds = START) {
  const clock = { seconds, now: () => clock.seconds * 1000 };
  return clock;
}

const claimsOf = (token: string) =>
  JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString());

test("issues sub, iat and exp from its clock, and accepts its own token", async () => {
  const clock = fakeClock();
  const issuer = createTokenIssuer(SECRET, TTL, { now: clock.now });
  const { token, expiresIn } = await issuer.issue(USER);
  expect(expiresIn).toBe(TTL);
  expect(claimsOf(token)).toEqual({ sub: USER, iat: START, exp: START + TTL });
  expect(await issuer.verify(token)).toBe(USER);
});

test("a remembered token still expires on time", async () => {
  const clock = fakeClock();
  const issuer = createTokenIssuer(SECRET, TTL, { now: clock.now });
  const { token } = await issuer.issue(USER);
  expect(await issuer.verify(token)).toBe(USER);
  clock.seconds = START + TTL - 1;
  expect(await issuer.verify(token)).toBe(USER); // from the verified cache
  clock.seconds = START + TTL;
  expect(await issuer.verify(token)).toBeUndefined();
  // Forgotten once expired, and a fresh verification refuses it too.
  expect(await issuer.verify(token)).toBeUndefined();
});

test("only verified tokens are remembered", async () => {
  const clock = fakeClock();
  const issuer = createTokenIssuer(SECRET, 60, { now: clock.now });
  const forged = (await createTokenIssuer(`${SECRET}-other`, 60, { now: clock.now }).issue(USER))
    .token;
  expect(await issuer.verify(forged)).toBeUndefined();
  expect(await issuer.verify(forged)).toBeUndefined();
});

describe("forged or odd tokens, validly signed or not, are refused", () => {
  test.each(Object.keys(FORGED_TOKENS))("%s", async (name) => {
    const clock = fakeClock();
    const issuer = createTokenIssuer(SECRET, TTL, { now: clock.now });
    const token = await FORGED_TOKENS[name]?.({ secret: SECRET, userId: USER, now: START });
    expect(await issuer.verify(token as string)).toBeUndefined();
  });

  test("the same builder with ordinary claims is accepted (the cases can fail)", async () => {
    const issuer = createTokenIssuer(SECRET, TTL, { now: fakeClock().now });
    const token = await signedToken(SECRET, { sub: USER, iat: START, exp: START + TTL });
    expect(await issuer.verify(token)).toBe(USER);
  });
});

describe("claimsProblem", () => {
  const ok = { sub: USER, iat: START, exp: START + TTL };

  test.each([
    ["ordinary claims", ok, undefined],
    [
      "iat a little ahead of our clock",
      { ...ok, iat: START + 30, exp: START + 30 + TTL },
      undefined,
    ],
    ["a shorter lifetime than configured", { ...ok, exp: START + 60 }, undefined],
    ["sub not a UUID", { ...ok, sub: "admin" }, /sub/],
    ["sub with a NUL", { ...ok, sub: `${USER.slice(0, -1)}\u0000` }, /sub/],
    ["sub in upper case", { ...ok, sub: USER.toUpperCase() }, /sub/],
    ["sub a number", { ...ok, sub: 1 }, /sub/],
    ["iat a year ahead", { ...ok, iat: START + 365 * 86400, exp: START + 365 * 86400 + 60 }, /iat/],
    [
      "iat just past the skew",
      {
        ...ok,
        iat: START + DEFAULT_CLOCK_SKEW_SECONDS + 1,
        exp: START + DEFAULT_CLOCK_SKEW_SECONDS + 61,
      },
      /iat/,
    ],
    ["iat a fraction", { ...ok, iat: START + 0.5 }, /iat/],
    ["iat negative", { ...ok, iat: -1 }, /iat/],
    ["iat a string", { ...ok, iat: String(START) }, /iat/],
    ["exp 1e300", { ...ok, exp: 1e300 }, /exp/],
    ["exp beyond iat + TTL", { ...ok, exp: START + TTL + 1 }, /exp/],
    ["exp before iat", { ...ok, exp: START - 1 }, /exp/],
    ["exp equal to iat", { ...ok, exp: START }, /exp/],
    ["exp Infinity", { ...ok, exp: Number.POSITIVE_INFINITY }, /exp/],
    ["expired", { sub: USER, iat: START - TTL, exp: START }, /expired/],
    ["no iat", { sub: USER, exp: START + 60 }, /claims/],
    ["no sub", { iat: START, exp: START + 60 }, /claims/],
    ["an extra claim", { ...ok, admin: true }, /claims/],
    ["an nbf claim", { ...ok, nbf: START }, /claims/],
  ] as const)("%s", (_, claims, expected) => {
    const problem = claimsProblem(claims as Record<string, unknown>, START, TTL);
    if (expected === undefined) expect(problem).toBeUndefined();
    else expect(problem).toMatch(expected);
  });
});
