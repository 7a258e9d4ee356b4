/** Access tokens: HS256 JWTs with `sub`, `iat` and `exp`, signed and checked by @elysiajs/jwt. */
import { jwt } from "@elysiajs/jwt";

export interface IssuedToken {
  token: string;
  expiresIn: number;
}

export interface TokenIssuer {
  issue(userId: string): Promise<IssuedToken>;
  /** The user id of a valid token; undefined for anything else (expired, forged, `alg: none`…). */
  verify(token: string): Promise<string | undefined>;
}

/** Verified tokens remembered, so a client's every request does not redo the HMAC. */
const VERIFIED_CACHE_SIZE = 10_000;

export function createTokenIssuer(secret: string, ttlSeconds: number): TokenIssuer {
  const { jwt: signer } = jwt({ name: "jwt", secret, alg: "HS256" }).decorator;
  // Only tokens that passed full verification go in; each hit still checks `exp`.
  const verified = new Map<string, { sub: string; exp: number }>();
  return {
    async issue(userId) {
      const token = await signer.sign({
        sub: userId,
        exp: Math.floor(Date.now() / 1000) + ttlSeconds,
      });
      return { token, expiresIn: ttlSeconds };
    },
    async verify(token) {
      const known = verified.get(token);
      if (known) {
        if (known.exp * 1000 > Date.now()) return known.sub;
        verified.delete(token);
        return undefined;
      }
      // Pinning the algorithm refuses `none` and any algorithm switch, whatever the header says.
      const payload = await signer.verify(token, {
        algorithms: ["HS256"],
        requiredClaims: ["sub", "exp", "iat"],
      });
      if (!payload || typeof payload.sub !== "string" || typeof payload.exp !== "number") {
        return undefined;
      }
      if (verified.size >= VERIFIED_CACHE_SIZE) verified.clear();
      verified.set(token, { sub: payload.sub, exp: payload.exp });
      return payload.sub;
    },
  };
}
