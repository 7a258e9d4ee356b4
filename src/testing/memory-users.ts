/** For tests: a users repository held in memory, for an AuthService without a database. */
import type { UserRow, UsersRepository } from "../auth/users.repository.ts";

export type MemoryUsers = UsersRepository & {
  /** Adds a user (with no usable password) and answers its row. */
  add(username: string): UserRow;
};

export function memoryUsers(): MemoryUsers {
  const rows = new Map<string, UserRow & { passwordHash: string }>();
  const createdAt = "2026-01-02T03:04:05Z";
  return {
    add(username) {
      const row = { id: Bun.randomUUIDv7(), username, createdAt, passwordHash: "" };
      rows.set(row.id, row);
      return row;
    },
    async insert(user) {
      const taken = [...rows.values()].some(
        (r) => r.username.toLowerCase() === user.username.toLowerCase(),
      );
      if (taken) return undefined;
      const row = { ...user, createdAt };
      rows.set(user.id, row);
      return row;
    },
    async findCredentials(username) {
      return [...rows.values()].find((r) => r.username.toLowerCase() === username.toLowerCase());
    },
    async findById(id) {
      return rows.get(id);
    },
    async delete(id) {
      return rows.delete(id);
    },
  };
}
