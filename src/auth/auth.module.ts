/** Users and tokens as a feature: registration, the OAuth2 token endpoint, the current user. */
import type { Db } from "../db/client.ts";
import type { FeatureModule } from "../feature-module.ts";
import { authRoutes } from "./auth.http.ts";
import { type AuthService, type AuthServiceDeps, createAuthService } from "./auth.service.ts";
import { bearerGuard } from "./bearer.guard.ts";
import { clientAddressResolver } from "./client-address.ts";
import { createTokenIssuer } from "./tokens.ts";
import { createUsersRepository } from "./users.repository.ts";

export interface AuthModuleDeps {
  db: Db;
  jwtSecret: string;
  jwtTtlSeconds: number;
  /** The password endpoints' limits and hashing queue (protection.ts); defaults if unset. */
  limits?: AuthServiceDeps["limits"];
  hashQueue?: AuthServiceDeps["hashQueue"];
  /** TRUSTED_PROXIES: peers whose X-Forwarded-For names the client (client-address.ts). */
  trustedProxies?: string[] | undefined;
  /** A service built elsewhere (tests: other hashers, clocks), in place of one from the above. */
  service?: AuthService | undefined;
}

/** The auth service alone: what checks tokens where no route is served (`grpc`, `seed`). */
export function createAuthServiceFor(deps: AuthModuleDeps): AuthService {
  return createAuthService({
    users: createUsersRepository(deps.db),
    tokens: createTokenIssuer(deps.jwtSecret, deps.jwtTtlSeconds),
    limits: deps.limits,
    hashQueue: deps.hashQueue,
  });
}

export function createAuthModule(deps: AuthModuleDeps): FeatureModule<AuthService> {
  const service = deps.service ?? createAuthServiceFor(deps);
  return {
    name: "auth",
    service,
    docsTag: { name: "auth", description: "Users and access tokens." },
    http: authRoutes(service, { clientAddress: clientAddressResolver(deps.trustedProxies) }),
    guards: [bearerGuard(service, ["/auth/me"])],
  };
}
