/**
 * Access tokens: HS256 JWTs carrying exactly `sub` (the user id), `iat` and `exp`, signed and
 * checked with jose. A token is only accepted when every claim is what this server issues.
 */
import { base64url, jwtVerify, SignJWT } from "jose";
import { badJsonKey } from "../http/parsers.ts";
import { isUuid } from "../uuid.ts";

export interface IssuedToken {
  token: string;
  expiresIn: number;
}

export interface TokenIssuer {
  issue(userId: string): Promise<IssuedToken>;
  /** The user id of a valid token; undefined for anything else (expired, forged, `alg: none`…). */
  verify(token: string): Promise<string | undefined>;
}

export interface TokenIssuerOptions {
  /** Milliseconds since the epoch; tests pass a clock of their own instead of sleeping. */
  now?: () => number;
  /**
   * How far a token's `iat` may lie ahead of this clock: another replica's clock may run a little
   * ahead. Anything further is a token no replica issued.
   */
  clockSkewSeconds?: number;
}

export const DEFAULT_CLOCK_SKEW_SECONDS = 60;

/** Verified tokens remembered, so a client's every request does not redo the HMAC. */
const VERIFIED_CACHE_SIZE = 10_000;

const ISSUED_CLAIMS = ["exp", "iat", "sub"];

/**
 * Why a verified token's claims are not ones this server issues, or undefined when they are.
 * `now` is in seconds; `ttlSeconds` is the configured lifetime, the longest `exp - iat` issued.
 */
export function claimsProblem(
  claims: Record<string, unknown>,
  now: number,
  ttlSeconds: number,
  clockSkewSeconds = DEFAULT_CLOCK_SKEW_SECONDS,
): string | undefined {
  const names = Object.keys(claims).sort();
  if (names.join() !== ISSUED_CLAIMS.join()) return `claims must be exactly ${ISSUED_CLAIMS}`;
  const { sub, iat, exp } = claims;
  // The user id goes to the database as a uuid: anything else would fail there, not here.
  if (typeof sub !== "string" || !isUuid(sub) || sub !== sub.toLowerCase()) {
    return "sub must be a user id (a lowercase UUID)";
  }
  if (!Number.isSafeInteger(iat) || (iat as number) < 0) {
    return "iat must be a whole number of seconds";
  }
  if (!Number.isSafeInteger(exp)) return "exp must be a whole number of seconds";
  const issuedAt = iat as number;
  const expiresAt = exp as number;
  if (issuedAt > now + clockSkewSeconds) return "iat is in the future";
  if (expiresAt <= issuedAt || expiresAt - issuedAt > ttlSeconds) {
    return "exp must be after iat by at most the token lifetime";
  }
  if (expiresAt <= now) return "the token has expired";
  return undefined;
}

/**
 * Whether a signed token's header or claims repeat a key. JSON.parse keeps the last of two
 * `sub`s, so such a token would mean whatever the reader's parser picks: none is issued here.
 */
function repeatsAKey(token: string): boolean {
  const text = new TextDecoder();
  return token
    .split(".", 2)
    .some((part) => badJsonKey(text.decode(base64url.decode(part))) !== undefined);
}

/**
 * Whether each of the token's three parts is in its one base64url spelling (RFC 7515: no padding,
 * and no bits set past the last byte). Decoders accept other spellings of the same bytes, and
 * would let one token be written several ways: a deny-list or cache keyed on the text misses them.
 */
function canonical(token: string): boolean {
  const parts = token.split(".");
  return (
    parts.length === 3 &&
    parts.every(
      (part) => /^[A-Za-z0-9_-]+$/.test(part) && base64url.encode(base64url.decode(part)) === part,
    )
  );
}

export function createTokenIssuer(
  secret: string,
  ttlSeconds: number,
  { now = Date.now, clockSkewSeconds = DEFAULT_CLOCK_SKEW_SECONDS }: TokenIssuerOptions = {},
): TokenIssuer {
  const key = new TextEncoder().encode(secret);
  const seconds = () => Math.floor(now() / 1000);
  // Only tokens that passed full verification go in; each hit still checks `exp`.
  const verified = new Map<string, { sub: string; exp: number }>();
  return {
    async issue(userId) {
      const iat = seconds();
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setSubject(userId)
        .setIssuedAt(iat)
        .setExpirationTime(iat + ttlSeconds)
        .sign(key);
      return { token, expiresIn: ttlSeconds };
    },
    async verify(token) {
      const known = verified.get(token);
      if (known) {
        if (known.exp > seconds()) return known.sub;
        verified.delete(token);
        return undefined;
      }
      if (!canonical(token)) return undefined;
      let claims: Record<string, unknown>;
      try {
        // Pinning the algorithm refuses `none` and any algorithm switch, whatever the header says.
        ({ payload: claims } = await jwtVerify(token, key, {
          algorithms: ["HS256"],
          typ: "JWT",
          currentDate: new Date(now()),
        }));
      } catch {
        return undefined;
      }
      if (claimsProblem(claims, seconds(), ttlSeconds, clockSkewSeconds)) return undefined;
      if (repeatsAKey(token)) return undefined;
      const { sub, exp } = claims as { sub: string; exp: number };
      if (verified.size >= VERIFIED_CACHE_SIZE) verified.clear();
      verified.set(token, { sub, exp });
      return sub;
    },
  };
}
