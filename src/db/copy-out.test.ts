import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { type CopyBatch, type CopyClient, copyClient, copyOut } from "./copy-out.ts";

describe.skipIf(!process.env.DATABASE_URL)("copyOut (PostgreSQL)", () => {
  let database: TestDatabase;
  /** One connection: a COPY or transaction left open would hold up every later statement. */
  let sql: postgres.Sql;
  let client: CopyClient;

  beforeAll(async () => {
    database = await createTestDatabase();
    sql = postgres(database.url as string, { max: 1, onnotice: () => {} });
    client = sql as unknown as CopyClient;
  }, SETUP_TIMEOUT_MS);
  afterAll(async () => {
    await sql?.end();
    await database?.close();
  }, SETUP_TIMEOUT_MS);

  const text = (batch: CopyBatch) => new TextDecoder().decode(batch.bytes);

  async function all(query: string, batchRows: number, setup: string[] = []) {
    const batches: CopyBatch[] = [];
    for await (const batch of copyOut(client, setup, query, batchRows)) batches.push(batch);
    return batches;
  }

  test("a postgres.js handle has a COPY client, PGlite's and a transaction's none", async () => {
    expect(copyClient(database.db)).toBeDefined();
    await database.db.transaction(async (tx) => expect(copyClient(tx)).toBeUndefined());
  });

  test("yields the rows in batches of whole rows joined by commas", async () => {
    const batches = await all("select x::text from generate_series(1, 7) x", 3);
    expect(batches.reduce((n, b) => n + b.rows, 0)).toBe(7);
    expect(batches.slice(0, -1).every((b) => b.rows >= 3)).toBe(true);
    expect(batches.map(text).join(",")).toBe("1,2,3,4,5,6,7");
    for (const batch of batches) expect(text(batch).split(",")).toHaveLength(batch.rows);
  });

  test("passes JSON text through unchanged: quotes, backslashes, escapes, non-ASCII", async () => {
    const value = { s: 'a "quoted" \\ back\nslash\t\u0001 é 😀', n: [1, null] };
    const literal = JSON.stringify(value).replaceAll("'", "''");
    const [batch] = await all(`select '${literal}'::json::text`, 10);
    expect(batch?.rows).toBe(1);
    expect(JSON.parse(text(batch as CopyBatch))).toEqual(value);
  });

  test("runs the setup in the COPY's transaction", async () => {
    const setup = ["set transaction read only", "set local statement_timeout = 12345"];
    const query =
      "select current_setting('transaction_read_only') || ' ' || current_setting('statement_timeout')";
    const [batch] = await all(query, 1, setup);
    expect(text(batch as CopyBatch)).toBe("on 12345ms");
    const [after] = await sql`select current_setting('statement_timeout') as t`;
    expect(after?.t).not.toBe("12345ms");
  });

  test("yields nothing for no rows", async () => {
    expect(await all("select 'x' where false", 5)).toEqual([]);
  });

  test("stopping early cancels the COPY and frees the connection", async () => {
    // 100 GB: read to its end instead of cancelled, the test would time out.
    const query = "select repeat('x', 1000) || generate_series(1, 100000000)";
    let seen = 0;
    for await (const batch of copyOut(client, [], query, 100)) {
      seen += batch.rows;
      break;
    }
    expect(seen).toBeGreaterThanOrEqual(100);
    const [row] = await sql`select 1 as one`;
    expect(row?.one).toBe(1);
    const copies = await sql`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and query ilike 'copy (%' and state = 'active'`;
    expect(copies[0]?.n).toBe(0);
  });

  test("a COPY over before it is stopped leaves no cancel behind for the connection's next statement", async () => {
    // Five rows: PostgreSQL has mostly sent them all, and is idle, by the time the first batch
    // arrives. A cancel that went out then and reached the backend later would cancel whatever
    // the connection (this test's only one) ran next: the sleep below. Five attempts, because
    // a COPY still running when its cancel lands is cancelled as it should be.
    for (let attempt = 0; attempt < 5; attempt++) {
      for await (const batch of copyOut(
        client,
        [],
        "select x::text from generate_series(1, 5) x",
        1,
      )) {
        expect(batch.rows).toBeGreaterThanOrEqual(1);
        break;
      }
      const [row] = await sql`select pg_sleep(0.05), 4 as four`;
      expect(row?.four).toBe(4);
    }
  });

  test("an error in the middle of the rows is thrown, and the connection works after", async () => {
    const failing = copyOut(
      client,
      [],
      "select (10 / (5 - x))::text from generate_series(1, 10) x",
      2,
    );
    const seen: string[] = [];
    const error = await (async () => {
      for await (const batch of failing) seen.push(text(batch));
    })().catch((err: unknown) => err);
    expect(String(error)).toContain("division by zero");
    expect(seen.join(",").split(",").length).toBeLessThan(5);
    const [row] = await sql`select 2 as two`;
    expect(row?.two).toBe(2);
  });

  test("a statement that cannot start is thrown before any batch", async () => {
    const error = await all("select no_such_column", 1).catch((err: unknown) => err);
    expect(String(error)).toContain("no_such_column");
    const [row] = await sql`select 3 as three`;
    expect(row?.three).toBe(3);
  });
});
