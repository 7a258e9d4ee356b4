/** Registration, password login and the resolution of a bearer token to its user. */
import { ConflictError, UnauthorizedError } from "../errors.ts";
import type { Registration, User } from "./auth.model.ts";
import type { TokenIssuer } from "./tokens.ts";
import type { UserRow, UsersRepository } from "./users.repository.ts";

export const BEARER_CHALLENGE = 'Bearer realm="petbooks"';
const INVALID_TOKEN = `${BEARER_CHALLENGE}, error="invalid_token"`;

export interface AuthServiceDeps {
  users: UsersRepository;
  tokens: TokenIssuer;
  /** How long a token's user is remembered before the database is asked again. */
  userCacheMs?: number;
}

const toUser = (row: UserRow): User => ({
  id: row.id,
  username: row.username,
  created_at: row.createdAt,
});

export function createAuthService({ users, tokens, userCacheMs = 5_000 }: AuthServiceDeps) {
  // Verified against when the user does not exist, so both failures cost one argon2 check.
  const dummyHash = Bun.password.hash(crypto.randomUUID(), { algorithm: "argon2id" });
  const knownUsers = new Map<string, { user: User; until: number }>();

  const loadUser = async (id: string): Promise<User | undefined> => {
    const cached = knownUsers.get(id);
    if (cached && cached.until > Date.now()) return cached.user;
    const row = await users.findById(id);
    if (!row) {
      knownUsers.delete(id);
      return undefined;
    }
    const user = toUser(row);
    if (knownUsers.size > 10_000) knownUsers.clear();
    knownUsers.set(id, { user, until: Date.now() + userCacheMs });
    return user;
  };

  return {
    async register(input: Registration): Promise<User> {
      const passwordHash = await Bun.password.hash(input.password, { algorithm: "argon2id" });
      const row = await users.insert({
        id: Bun.randomUUIDv7(),
        username: input.username,
        passwordHash,
      });
      if (!row) throw new ConflictError("That username is taken.");
      return toUser(row);
    },

    async login(username: string, password: string) {
      const found = await users.findCredentials(username);
      const valid = await Bun.password.verify(password, found?.passwordHash ?? (await dummyHash));
      if (!found || !valid) {
        throw new UnauthorizedError("Wrong username or password.", BEARER_CHALLENGE);
      }
      return tokens.issue(found.id);
    },

    /** The user behind an `Authorization` header value, or a 401 with the right challenge. */
    async authenticate(authorization: string | null): Promise<User> {
      const match = authorization ? /^Bearer +([A-Za-z0-9._~+/=-]+)$/i.exec(authorization) : null;
      if (!match?.[1]) {
        throw new UnauthorizedError(
          "A bearer token is required (Authorization: Bearer <token>).",
          BEARER_CHALLENGE,
        );
      }
      const userId = await tokens.verify(match[1]);
      const user = userId ? await loadUser(userId) : undefined;
      if (!user) throw new UnauthorizedError("The token is invalid or expired.", INVALID_TOKEN);
      return user;
    },

    async deleteUser(id: string): Promise<void> {
      knownUsers.delete(id);
      await users.delete(id);
    },
  };
}

export type AuthService = ReturnType<typeof createAuthService>;
