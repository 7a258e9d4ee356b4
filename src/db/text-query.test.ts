import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { silentLogger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { openDatabase } from "./client.ts";
import { renderedOnce } from "./prepared.ts";
import { rows } from "./rows.ts";
import {
  PGLITE_PREPARED_MAX,
  POSTGRES_PREPARED_MAX,
  type TextQuery,
  textQuery,
} from "./text-query.ts";

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
}, SETUP_TIMEOUT_MS);
afterAll(() => database?.close(), SETUP_TIMEOUT_MS);

const rendered = renderedOnce();
const statement = rendered("k", () => sql`select ${sql.placeholder("n")}::int + 1 as next`);
const plain = rendered("plain", () => sql`select 'a$1' as text, 2 as two`);

describe("textQuery", () => {
  test("runs rendered text on the driver, with and without parameters, rows by column name", async () => {
    const run = textQuery(database.db);
    expect(await run<{ next: number }>(statement, [41])).toEqual([{ next: 42 }]);
    expect(await run(plain)).toEqual([{ text: "a$1", two: 2 }]);
  });

  test("value answers a statement's one value: undecoded UTF-8 on PostgreSQL, text elsewhere", async () => {
    const text = 'é "ü" 🐕';
    const one = rendered("one", () => sql`select ${sql.raw(`'${text}'`)}::text as v, 2 as w`);
    const none = rendered("none", () => sql`select 'x' as v where false`);
    const onPostgres = Boolean(process.env.DATABASE_URL);
    for (const options of [undefined, { reuse: true }]) {
      const value = await textQuery(database.db).value(one, options);
      expect(value instanceof Uint8Array).toBe(onPostgres);
      expect(value instanceof Uint8Array ? Buffer.from(value).toString() : value).toBe(text);
      expect(await textQuery(database.db).value(none, options)).toBeUndefined();
    }
    const inTransaction = await database.db.transaction((tx) => textQuery(tx).value(one));
    expect(inTransaction).toBe(text);
  });

  test("answers a plain Array, which JSON.stringify takes on its fast path", async () => {
    const rows = await textQuery(database.db)(plain);
    expect(Object.getPrototypeOf(rows)).toBe(Array.prototype);
  });

  test("runs it through Drizzle on a handle that is no driver's own (a transaction)", async () => {
    const answers = await database.db.transaction(async (tx) => {
      const run = textQuery(tx);
      return [await run<{ next: number }>(statement, [1]), await run(plain)];
    });
    expect(answers).toEqual([[{ next: 2 }], [{ text: "a$1", two: 2 }]]);
  });

  const onPglite = () => !process.env.DATABASE_URL;
  /** The statements prepared by textQuery, oldest first (on PGlite: one session). */
  const preparedNames = async () => {
    const prepared = rows<{ statement: string }>(
      await database.db.execute(
        sql`select statement from pg_prepared_statements where name like 'petbooks%' order by prepare_time, name`,
      ),
    );
    return prepared.map((r) => r.statement);
  };

  test.if(onPglite())(
    "on PGlite, a statement without parameters is prepared once, then executed",
    async () => {
      const run = textQuery(database.db);
      const text = "select 7 as seven, 'x' as x";
      const before = (await preparedNames()).length;
      expect(await run(text)).toEqual([{ seven: 7, x: "x" }]);
      expect(await run(text)).toEqual([{ seven: 7, x: "x" }]);
      const names = await preparedNames();
      expect(names).toHaveLength(before + 1);
      expect(names.at(-1)).toContain(text);
    },
  );

  test.if(onPglite())(
    "on PGlite, a statement PREPARE does not take runs as text, and so do those past the bound",
    async () => {
      const run = textQuery(database.db);
      expect(await run<{ setting: string }>("show datestyle")).toHaveLength(1);
      for (let i = 0; i <= PGLITE_PREPARED_MAX; i++) {
        expect(await run<{ n: number }>(`select ${i} as n`)).toEqual([{ n: i }]);
      }
      const names = await preparedNames();
      expect(names.length).toBeGreaterThan(PGLITE_PREPARED_MAX / 2);
      expect(names.length).toBeLessThanOrEqual(PGLITE_PREPARED_MAX);
      expect(
        names.some((statement) => statement.includes(`select ${PGLITE_PREPARED_MAX} as n`)),
      ).toBe(false);
      expect(names.some((statement) => statement.includes("datestyle"))).toBe(false);
    },
  );

  /** A one-connection pool on the test database: prepared statements belong to a connection. */
  const withOneConnection = async (work: (run: TextQuery) => Promise<void>) => {
    const single = await openDatabase({ databaseUrl: database.url, poolSize: 1 }, silentLogger);
    try {
      await work(textQuery(single.db));
    } finally {
      await single.close();
    }
  };
  /** The texts of the connection's protocol-level prepared statements. */
  const preparedOnConnection = async (run: TextQuery) =>
    (
      await run<{ statement: string }>(
        "select statement from pg_prepared_statements where not from_sql",
      )
    ).map((r) => r.statement);

  test.if(!onPglite())(
    "on PostgreSQL, a statement run with `reuse` is prepared once per connection, others are not",
    async () => {
      await withOneConnection(async (run) => {
        const reused = "select 'reused' as kind, 3 as n";
        const once = "select 'once' as kind, 4 as n";
        for (let i = 0; i < 3; i++) {
          expect(await run(reused, [], { reuse: true })).toEqual([{ kind: "reused", n: 3 }]);
          expect(await run(once)).toEqual([{ kind: "once", n: 4 }]);
        }
        const withParameter = "select $1::int * 2 as doubled";
        expect(await run(withParameter, [4], { reuse: true })).toEqual([{ doubled: 8 }]);
        expect(await run(withParameter, [5], { reuse: true })).toEqual([{ doubled: 10 }]);
        const prepared = await preparedOnConnection(run);
        expect(prepared.filter((text) => text === reused)).toHaveLength(1);
        expect(prepared.filter((text) => text === withParameter)).toHaveLength(1);
        expect(prepared).not.toContain(once);
      });
    },
  );

  test.if(!onPglite())(
    `on PostgreSQL, at most ${POSTGRES_PREPARED_MAX} statements are prepared; later ones run unnamed`,
    async () => {
      await withOneConnection(async (run) => {
        for (let i = 0; i <= POSTGRES_PREPARED_MAX; i++) {
          expect(await run(`select ${i} as n`, [], { reuse: true })).toEqual([{ n: i }]);
        }
        // postgres.js prepares its own query of the array types too.
        const prepared = (await preparedOnConnection(run)).filter((t) =>
          /^select \d+ as n$/.test(t),
        );
        expect(prepared).toHaveLength(POSTGRES_PREPARED_MAX);
        expect(prepared).not.toContain(`select ${POSTGRES_PREPARED_MAX} as n`);
        // The first ones stay prepared and keep answering.
        expect(await run("select 0 as n", [], { reuse: true })).toEqual([{ n: 0 }]);
      });
    },
  );

  test("renderedOnce renders each key once and keeps at most its bound", () => {
    let builds = 0;
    const once = renderedOnce(2);
    const build = () => {
      builds += 1;
      return sql`select 1`;
    };
    once("a", build);
    once("a", build);
    expect(builds).toBe(1);
    once("b", build);
    once("c", build); // over the bound: the kept ones go, and "a" is rendered again
    once("a", build);
    expect(builds).toBe(4);
  });
});
