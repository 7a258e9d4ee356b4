import { afterAll, beforeAll, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { rows } from "../db/rows.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { SETUP_TIMEOUT_MS } from "../testing/timeouts.ts";
import { forgetConsumedBefore, rememberNew } from "./consumed-events.repository.ts";

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
}, SETUP_TIMEOUT_MS);
afterAll(() => database?.close(), SETUP_TIMEOUT_MS);

const remembered = async () =>
  rows<{ event_id: string }>(
    await database.db.execute(sql`select event_id from consumed_events`),
  ).map((r) => r.event_id);

test("remembers each id once and returns only the new ones", async () => {
  const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
  expect(await rememberNew(database.db, [])).toEqual(new Set());
  expect(await rememberNew(database.db, [a])).toEqual(new Set([a]));
  expect(await rememberNew(database.db, [a, b])).toEqual(new Set([b]));
  expect(await rememberNew(database.db, [b, a])).toEqual(new Set());
  expect(await remembered()).toEqual(expect.arrayContaining([a, b]));
});

test("forgetting old ids keeps the recent ones", async () => {
  const [old, recent] = [crypto.randomUUID(), crypto.randomUUID()];
  await rememberNew(database.db, [old]);
  await rememberNew(database.db, [recent]);
  await database.db.execute(sql`update consumed_events set consumed_at = now() - interval '30 days'
    where event_id = ${old}`);
  await forgetConsumedBefore(database.db, new Date(Date.now() - 7 * 24 * 3_600_000));
  const left = await remembered();
  expect(left).toContain(recent);
  expect(left).not.toContain(old);
});
