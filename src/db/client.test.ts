/**
 * PostgreSQL out of reach (through a proxy that cuts it off): every query fails fast as an
 * unavailable database, whatever the load, and the pool works again once it is back.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { silentLogger } from "../logger.ts";
import { capturingLogger } from "../testing/logger.ts";
import { expectTwoRetries, recordingSleep } from "../testing/sleep.ts";
import { type OutageMode, startTcpProxy, type TcpProxy } from "../testing/tcp-proxy.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import {
  type Database,
  openDatabase,
  PostgresConnection,
  serverSilence,
  silentAfterMs,
} from "./client.ts";
import { isDatabaseUnavailable } from "./errors.ts";

const baseUrl = process.env.DATABASE_URL;
const TIMEOUT_MS = 1000;
/**
 * Far beyond what a query may take here (TIMEOUT_MS), and far below what queueing behind one
 * connection's failed attempts takes (about one TIMEOUT_MS each, for 100 queries): a query
 * still pending then is hanging.
 */
const HANG_MS = 30_000;
const LOAD = 100;

let proxy: TcpProxy;
let database: Database;

beforeAll(async () => {
  if (!baseUrl) return;
  const target = new URL(baseUrl);
  proxy = startTcpProxy({ hostname: target.hostname, port: Number(target.port || 5432) });
  const url = new URL(baseUrl);
  url.hostname = "127.0.0.1";
  url.port = String(proxy.port);
  // One connection, so nearly every query waits for it: the wait postgres.js never bounds.
  database = await openDatabase(
    { databaseUrl: url.toString(), poolSize: 1, timeoutMs: TIMEOUT_MS },
    silentLogger,
  );
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await database?.close();
  proxy?.stop();
}, SETUP_TIMEOUT_MS);

type Outcome = "ok" | "unavailable" | "hung" | `other: ${string}`;

/** A plain query or a transaction, as Drizzle runs them, and how it ended. */
async function attempt(i: number): Promise<Outcome> {
  const work =
    i % 2 === 0
      ? database.db.execute(sql`select 1`)
      : database.db.transaction((tx) => tx.execute(sql`select 1`));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve("hung"), HANG_MS);
  });
  const outcome = work.then(
    (): Outcome => "ok",
    (err): Outcome => (isDatabaseUnavailable(err) ? "unavailable" : `other: ${err}`),
  );
  const result = await Promise.race([outcome, hung]);
  clearTimeout(timer);
  return result;
}

const attempts = (n: number) => Promise.all(Array.from({ length: n }, (_, i) => attempt(i)));

/** Polls until every attempt of a batch succeeds; generous deadline, no speed assumed. */
async function recovered(): Promise<boolean> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if ((await attempts(10)).every((o) => o === "ok")) return true;
    await Bun.sleep(100);
  }
  return false;
}

describe.skipIf(!baseUrl)("PostgreSQL out of reach", () => {
  test.each(["refuse", "blackhole"] as OutageMode[])(
    `%s: ${LOAD} concurrent queries and transactions all fail as unavailable, then work again`,
    async (mode) => {
      expect(await attempts(4)).toEqual(["ok", "ok", "ok", "ok"]);
      proxy.cut(mode);
      const during = await attempts(LOAD);
      expect(during.filter((o) => o !== "unavailable")).toEqual([]);
      const ping = await database.ping().then(
        () => "ok",
        (err) => (isDatabaseUnavailable(err) ? "unavailable" : String(err)),
      );
      expect(ping).toBe("unavailable");
      proxy.resume();
      // A connection whose query was cancelled while it started went back to the pool: a pool of
      // one serves again.
      expect(await recovered()).toBe(true);
    },
    SETUP_TIMEOUT_MS,
  );

  test(
    `silent: ${LOAD} queries and transactions sent to a server that stopped answering fail as unavailable, then work again`,
    async () => {
      expect(await attempts(4)).toEqual(["ok", "ok", "ok", "ok"]);
      // The pool's connection stays open and takes the queries, but nothing comes back: only
      // giving the connection up ends the wait (statement_timeout runs on a server that is gone).
      proxy.silence();
      const during = await attempts(LOAD);
      expect(during.filter((o) => o !== "unavailable")).toEqual([]);
      proxy.resume();
      expect(await recovered()).toBe(true);
    },
    SETUP_TIMEOUT_MS,
  );
});

describe.skipIf(!baseUrl)("a connection that hears nothing (answer_timeout, onsilence)", () => {
  const connect = (url: string, onsilence: () => boolean) =>
    postgres(url, { max: 1, answer_timeout: 0.2, onsilence, onnotice: () => {} });

  test("is kept while onsilence says the server still answers: a long statement ends", async () => {
    let asked = 0;
    const client = connect(baseUrl as string, () => {
      asked++;
      return false;
    });
    try {
      const rows = await client.unsafe("select pg_sleep(1) is null as slept");
      expect(rows.map((row) => row.slept)).toEqual([false]);
      expect(asked).toBeGreaterThan(0);
    } finally {
      await client.end({ timeout: 1 });
    }
  });

  test("is given up when onsilence says so: its queries fail with ANSWER_TIMEOUT", async () => {
    const target = new URL(baseUrl as string);
    const silent = startTcpProxy({ hostname: target.hostname, port: Number(target.port || 5432) });
    target.hostname = "127.0.0.1";
    target.port = String(silent.port);
    const client = connect(target.toString(), () => true);
    try {
      await client.unsafe("select 1");
      silent.silence();
      // Each fails with its code, which counts as an unavailable database (503).
      const failures = await Promise.all(
        [1, 2, 3].map(() =>
          client
            .unsafe("select 1")
            .then(String, (err) => `${err.code} ${isDatabaseUnavailable(err)}`),
        ),
      );
      expect(failures).toEqual(Array(3).fill("ANSWER_TIMEOUT true"));
    } finally {
      await client.end({ timeout: 0 });
      silent.stop();
    }
  });
});

describe("serverSilence", () => {
  test("gives up only when a fresh connection cannot reach the server either", async () => {
    expect(await serverSilence("", 1000, () => Promise.resolve())()).toBe(false);
    expect(await serverSilence("", 1000, () => Promise.reject(new Error("no answer")))()).toBe(
      true,
    );
  });

  test("connections silent at the same moment share one check; a later one checks again", async () => {
    let checks = 0;
    let answer = () => {};
    const silence = serverSilence("", 1000, () => {
      checks++;
      return new Promise<void>((resolve) => {
        answer = resolve;
      });
    });
    const together = [silence(), silence(), silence()];
    answer();
    expect(await Promise.all(together)).toEqual([false, false, false]);
    expect(checks).toBe(1);
    const later = silence();
    answer();
    expect(await later).toBe(false);
    expect(checks).toBe(2);
  });

  test("waits for statement_timeout and a second more (at most the timeout again)", () => {
    expect(silentAfterMs(5000)).toBe(6000);
    expect(silentAfterMs(500)).toBe(1000);
  });
});

describe("PostgresConnection", () => {
  const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

  /** A ping that fails with `errors` in turn, then answers; the waits are recorded, not slept. */
  function connection(errors: Error[], attempts = 5) {
    const { logger, lines } = capturingLogger();
    const { sleep, delays } = recordingSleep();
    let pings = 0;
    const ping = async () => {
      pings += 1;
      const error = errors.shift();
      if (error) throw error;
    };
    return {
      connection: new PostgresConnection(ping, logger, attempts, sleep),
      lines,
      delays,
      pings: () => pings,
    };
  }

  test("tries again while PostgreSQL is out of reach, waiting longer each time", async () => {
    const c = connection([
      withCode("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED"),
      withCode("the database system is starting up", "57P03"),
    ]);
    await c.connection.connect();
    expect(c.pings()).toBe(3);
    expectTwoRetries(c, "connect to PostgreSQL", 500);
  });

  test("gives up after `attempts`, with the last error", async () => {
    const refused = () => withCode("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED");
    const c = connection([refused(), refused(), refused()], 2);
    await expect(c.connection.connect()).rejects.toThrow("ECONNREFUSED");
    expect(c.pings()).toBe(2);
  });

  test("a refusal no retry fixes fails at once", async () => {
    const c = connection([withCode("password authentication failed", "28P01")]);
    await expect(c.connection.connect()).rejects.toThrow("password authentication failed");
    expect(c.pings()).toBe(1);
    expect(c.delays).toEqual([]);
  });
});
