/** All SQL for users. */
import { eq, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { preparedOnce } from "../db/prepared.ts";
import { rfc3339Text } from "../db/timestamps.ts";
import { users } from "./users.table.ts";

export interface UserRow {
  id: string;
  username: string;
  createdAt: string;
}

const publicColumns = {
  id: users.id,
  username: users.username,
  createdAt: rfc3339Text(users.createdAt),
};

export function createUsersRepository(db: Db) {
  const findCredentials = preparedOnce(() =>
    db
      .select({ id: users.id, passwordHash: users.passwordHash })
      .from(users)
      .where(sql`lower(${users.username}) = lower(${sql.placeholder("username")})`)
      .prepare("users_find_credentials"),
  );
  const findById = preparedOnce(() =>
    db
      .select(publicColumns)
      .from(users)
      .where(eq(users.id, sql.placeholder("id")))
      .prepare("users_find_by_id"),
  );

  return {
    /** Undefined when the username (compared case-insensitively) is taken. */
    async insert(user: { id: string; username: string; passwordHash: string }) {
      const [row] = await db
        .insert(users)
        .values(user)
        .onConflictDoNothing()
        .returning(publicColumns);
      return row as UserRow | undefined;
    },

    async findCredentials(username: string) {
      const [row] = await findCredentials().execute({ username });
      return row;
    },

    async findById(id: string): Promise<UserRow | undefined> {
      const [row] = await findById().execute({ id });
      return row;
    },

    async delete(id: string): Promise<boolean> {
      const deleted = await db.delete(users).where(eq(users.id, id)).returning({ id: users.id });
      return deleted.length > 0;
    },
  };
}

export type UsersRepository = ReturnType<typeof createUsersRepository>;
