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

export function createTokenIssuer(secret: string, ttlSeconds: number): TokenIssuer {
  const { jwt: signer } = jwt({ name: "jwt", secret, alg: "HS256" }).decorator;
  return {
    async issue(userId) {
      const token = await signer.sign({
        sub: userId,
        exp: Math.floor(Date.now() / 1000) + ttlSeconds,
      });
      return { token, expiresIn: ttlSeconds };
    },
    async verify(token) {
      // Pinning the algorithm refuses `none` and any algorithm switch, whatever the header says.
      const payload = await signer.verify(token, {
        algorithms: ["HS256"],
        requiredClaims: ["sub", "exp", "iat"],
      });
      return payload && typeof payload.sub === "string" ? payload.sub : undefined;
    },
  };
}
