import { afterEach, describe, expect, spyOn, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { collectingGarbage, STATEMENTS_PER_COLLECTION } from "./pglite-garbage.ts";

/** A stand-in client: answers every statement with its own text, keeps a private field. */
class FakeClient {
  #answered = 0;
  async query(text: string) {
    this.#answered++;
    return { rows: [{ text }], fields: [] };
  }
  async exec(text: string) {
    this.#answered++;
    return [{ rows: [{ text }], fields: [] }];
  }
  answered() {
    return this.#answered;
  }
}

describe("collectingGarbage", () => {
  test("collects once every `every` statements, query and exec alike", async () => {
    let collections = 0;
    const client = collectingGarbage(
      new FakeClient() as never,
      3,
      () => collections++,
    ) as never as FakeClient;
    const counts: number[] = [];
    for (let i = 0; i < 7; i++) {
      await (i % 2 === 0 ? client.query(`q${i}`) : client.exec(`e${i}`));
      counts.push(collections);
    }
    expect(counts).toEqual([0, 0, 1, 1, 1, 2, 2]);
  });

  test("answers as the client does, and calls the client's other methods on the client", async () => {
    const client = collectingGarbage(new FakeClient() as never, 2, () => {}) as never as FakeClient;
    expect(await client.query("select 1")).toEqual({ rows: [{ text: "select 1" }], fields: [] });
    expect(await client.exec("select 2")).toEqual([{ rows: [{ text: "select 2" }], fields: [] }]);
    expect(client.answered()).toBe(2);
  });
});

describe.skipIf(Boolean(process.env.DATABASE_URL))("the embedded database", () => {
  let database: TestDatabase | undefined;
  afterEach(async () => {
    await database?.close();
  }, TEARDOWN_TIMEOUT_MS);

  // Real work: the embedded database and a thousand statements, on a machine maybe busy.
  test(
    "collects garbage as it runs statements",
    async () => {
      database = await createTestDatabase();
      const gc = spyOn(Bun, "gc");
      try {
        for (let i = 0; i < STATEMENTS_PER_COLLECTION; i++)
          await database.db.execute(sql`select 1`);
        expect(gc).toHaveBeenCalledWith(false);
      } finally {
        gc.mockRestore();
      }
    },
    SETUP_TIMEOUT_MS,
  );
});
