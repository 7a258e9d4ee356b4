import { describe, expect, test } from "bun:test";
import { createLogger } from "../logger.ts";
import { createEmptyPostgresDatabase, withDatabase, withPostgres } from "../testing/database.ts";
import { openDatabase } from "./client.ts";
import {
  DatabaseTimeoutError,
  isDatabaseOutage,
  isDatabaseUnavailable,
  isForeignKeyViolation,
  permanentRefusal,
  refusedConnection,
  withDatabaseTimeout,
} from "./errors.ts";

const withCode = (code: string, cause?: unknown) =>
  Object.assign(new Error(`failed: ${code}`), { code }, cause ? { cause } : {});

describe("isDatabaseUnavailable", () => {
  test.each([
    "ECONNREFUSED",
    "ECONNRESET",
    "CONNECT_TIMEOUT",
    "CONNECTION_CLOSED",
    "CONNECTION_ENDED",
    "08006",
    "57P01",
    "57P03",
    "53300",
    "53100",
    "57014",
    "25006",
  ])("%s means try again later", (code) => {
    expect(isDatabaseUnavailable(withCode(code))).toBe(true);
    // As Drizzle throws it: its own error, the driver's as the cause.
    expect(isDatabaseUnavailable(new Error("Failed query", { cause: withCode(code) }))).toBe(true);
  });

  test.each(["23505", "22P02", "28P01", "42P01"])("%s does not", (code) => {
    expect(isDatabaseUnavailable(withCode(code))).toBe(false);
  });

  test("a database closed to connections (FATAL 55000) is, the same SQLSTATE on a statement is not", () => {
    const closed = Object.assign(withCode("55000"), { severity: "FATAL" });
    expect(isDatabaseUnavailable(closed)).toBe(true);
    expect(isDatabaseUnavailable(new Error("Failed query", { cause: closed }))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(withCode("55000"), { severity: "ERROR" }))).toBe(
      false,
    );
  });

  test("nor does an error without a code", () => {
    expect(isDatabaseUnavailable(new Error("boom"))).toBe(false);
    expect(isDatabaseUnavailable("boom")).toBe(false);
  });
});

test("permanent refusals are named, transient ones are not", () => {
  expect(permanentRefusal(withCode("28P01"))).toBe("wrong password (28P01)");
  expect(permanentRefusal(withCode("3D000"))).toBe("the database does not exist (3D000)");
  expect(permanentRefusal(withCode("ECONNREFUSED"))).toBeUndefined();
});

describe("a connection refused for good, under a running server", () => {
  const fatal = (code: string) => Object.assign(withCode(code), { severity: "FATAL" });

  test.each([
    ["3D000", "the database does not exist (3D000)"],
    ["28P01", "wrong password (28P01)"],
    ["28000", "the role may not log in here (pg_hba.conf) (28000)"],
  ])("FATAL %s is an outage named by its reason, not one a retry ends", (code, reason) => {
    const err = new Error("Failed query", { cause: fatal(code) });
    expect(refusedConnection(err)).toBe(reason);
    expect(isDatabaseOutage(err)).toBe(true);
    // Startup must still fail at once on it instead of retrying (db/client.ts).
    expect(isDatabaseUnavailable(err)).toBe(false);
  });

  test("the same SQLSTATE on a statement is none, and neither is any other error", () => {
    expect(refusedConnection(Object.assign(withCode("42501"), { severity: "ERROR" }))).toBe(
      undefined,
    );
    expect(isDatabaseOutage(Object.assign(withCode("42501"), { severity: "ERROR" }))).toBe(false);
    expect(isDatabaseOutage(fatal("42P01"))).toBe(false);
    expect(isDatabaseOutage(new Error("boom"))).toBe(false);
    expect(isDatabaseOutage(withCode("ECONNREFUSED"))).toBe(true);
  });
});

describe.skipIf(!process.env.DATABASE_URL)("connecting to PostgreSQL", () => {
  test("an unknown database fails at once with its own reason, and is not retried", async () => {
    const url = withDatabase(process.env.DATABASE_URL as string, `petbooks_missing_${Date.now()}`);
    const lines: string[] = [];
    const logger = createLogger("debug", (line) => lines.push(line));
    const err = await openDatabase({ databaseUrl: url, connectAttempts: 5 }, logger).catch(
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("refused the connection: the database does not exist");
    expect(lines.join("")).not.toContain("retrying");
  }, 60_000);

  test("a database dropped under an open pool refuses its next connection for good: an outage", async () => {
    const database = await createEmptyPostgresDatabase();
    let dropped = false;
    try {
      await withPostgres(database.url, async (client) => {
        await client`select 1`;
        const name = new URL(database.url).pathname.slice(1);
        await withPostgres(process.env.DATABASE_URL as string, (admin) =>
          admin.unsafe(`drop database "${name}" with (force)`),
        );
        dropped = true;
        // The first statement may still meet the terminated connection; the next reconnects.
        const errors: unknown[] = [];
        for (let i = 0; i < 2; i++) errors.push(await client`select 1`.catch((e: unknown) => e));
        const last = errors.at(-1);
        expect(last).toMatchObject({ code: "3D000", severity: "FATAL" });
        expect(refusedConnection(last)).toBe("the database does not exist (3D000)");
        for (const err of errors) expect(isDatabaseOutage(err)).toBe(true);
      });
    } finally {
      if (!dropped) await database.drop();
    }
  }, 60_000);

  test("a database closed to connections (ALLOW_CONNECTIONS false) is unavailable, not a bug", async () => {
    const database = await createEmptyPostgresDatabase();
    try {
      const name = new URL(database.url).pathname.slice(1);
      await withPostgres(process.env.DATABASE_URL as string, (admin) =>
        admin.unsafe(`alter database "${name}" allow_connections false`),
      );
      const err = await withPostgres(database.url, (client) => client`select 1`).catch(
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: "55000", severity: "FATAL" });
      expect(isDatabaseUnavailable(err)).toBe(true);
    } finally {
      await database.drop();
    }
  }, 60_000);
});

test("a foreign key violation is recognised under Drizzle's wrapper", () => {
  expect(isForeignKeyViolation(new Error("Failed query", { cause: withCode("23503") }))).toBe(true);
  expect(isForeignKeyViolation(withCode("23505"))).toBe(false);
});

describe("withDatabaseTimeout", () => {
  test("gives up on work that never answers, as an unavailable database", async () => {
    const never = new Promise<never>(() => {});
    const err = await withDatabaseTimeout(never, 10, "ping").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatabaseTimeoutError);
    expect((err as Error).message).toBe("ping: no answer in 10 ms");
    expect(isDatabaseUnavailable(err)).toBe(true);
  });

  test("passes answers and failures through", async () => {
    expect(await withDatabaseTimeout(Promise.resolve(7), 60_000, "ping")).toBe(7);
    const failure = withCode("ECONNREFUSED");
    expect(await withDatabaseTimeout(Promise.reject(failure), 60_000, "ping").catch((e) => e)).toBe(
      failure,
    );
  });
});
