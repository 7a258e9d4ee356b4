/** The compiled binary, end to end: `petbooks grpc` answers standard clients, then stops cleanly. */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import type { Book } from "../src/books/books.model.ts";
import { createBooksServiceFor } from "../src/books/books.module.ts";
import { createNoCache } from "../src/cache/cache.ts";
import { openDatabase } from "../src/db/client.ts";
import { migrate } from "../src/db/migrate.ts";
import { silentLogger } from "../src/logger.ts";
import {
  type RunningGrpcServer,
  runBinary,
  startGrpcServer,
  tempDataDir,
} from "../src/testing/binary.ts";
import { createEmptyPostgresDatabase } from "../src/testing/database.ts";
import { bufCurl, grpcJsCall, grpcJsClient } from "../src/testing/grpc-server.ts";
import { SETUP_TIMEOUT_MS } from "../src/testing/timeouts.ts";

// These start the compiled binary (built on first use): more than the default 5 s on a busy machine.
setDefaultTimeout(60_000);

const onPostgres = Boolean(process.env.DATABASE_URL);
const dataDir = tempDataDir();
// Not about authentication (test/contract/grpc.contract.test.ts is): BookService open to all.
const env: Record<string, string> = { DATA_DIR: dataDir, LOG_LEVEL: "info", GRPC_AUTH: "none" };
let dropDatabase = async () => {};
let server: RunningGrpcServer;
const seeded: Book[] = [];

/** Books go in before the server starts: the embedded database admits one process at a time. */
async function seed(n: number) {
  const database = await openDatabase(
    { databaseUrl: env.DATABASE_URL, dataDir: env.DATA_DIR },
    silentLogger,
  );
  try {
    await migrate(database.db, silentLogger);
    const books = createBooksServiceFor({ db: database.db, cache: createNoCache() });
    for (let i = 1; i <= n; i++) {
      seeded.push(
        await books.create({ title: `Book ${i}`, author: "E2E", published_on: "1999-12-31" }),
      );
    }
  } finally {
    await database.close();
  }
}

beforeAll(async () => {
  if (onPostgres) {
    const database = await createEmptyPostgresDatabase();
    env.DATABASE_URL = database.url;
    dropDatabase = database.drop;
  }
  await seed(5);
  server = await startGrpcServer(env);
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop("SIGKILL");
  await dropDatabase();
  rmSync(dataDir, { recursive: true, force: true });
}, SETUP_TIMEOUT_MS);

const call = (method: string, body: unknown, options: { schema?: boolean } = {}) =>
  bufCurl(`${server.url}/${method}`, ["-d", JSON.stringify(body)], options);

describe("petbooks grpc (compiled binary)", () => {
  test("--help", async () => {
    const help = await runBinary(["grpc", "--help"], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: petbooks grpc");
    expect((await runBinary(["--help"], {})).stdout).toContain("grpc");
  });

  test("reflection lists the services to buf curl", async () => {
    const result = await bufCurl(server.url, ["--list-services"]);
    expect(result.stdout.trim().split("\n")).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "petbooks.v1.BookService",
    ]);
  });

  test("health is SERVING", async () => {
    const result = await call("grpc.health.v1.Health/Check", {
      service: "petbooks.v1.BookService",
    });
    expect(JSON.parse(result.stdout)).toEqual({ status: "SERVING" });
  });

  test("GetBook, through reflection and from the .proto files", async () => {
    const book = seeded[0] as Book;
    const expected = {
      id: book.id,
      title: book.title,
      author: "E2E",
      publishedOn: "1999-12-31",
      createdAt: book.created_at,
      updatedAt: book.updated_at,
    };
    for (const schema of [false, true]) {
      const result = await call("petbooks.v1.BookService/GetBook", { id: book.id }, { schema });
      expect(result.stderr).toBe("");
      expect(JSON.parse(result.stdout)).toEqual(expected);
    }
  });

  test.each([
    ["an unknown id", "not_found", { id: "0199a7c6-0000-7000-8000-000000000000" }],
    ["a malformed id", "invalid_argument", { id: "x'; select 1; --" }],
  ])("GetBook of %s is %s", async (_, code, body) => {
    const result = await call("petbooks.v1.BookService/GetBook", body);
    expect(result.code).not.toBe(0);
    expect(JSON.parse(result.stderr)).toMatchObject({ code });
    expect(result.stderr).not.toMatch(/select|from books/i);
  });

  test("ListBooks pages through every book, newest first", async () => {
    const ids: string[] = [];
    let pageToken = "";
    do {
      const result = await call(
        "petbooks.v1.BookService/ListBooks",
        { pageSize: 2, pageToken },
        { schema: true },
      );
      const page = JSON.parse(result.stdout);
      expect(page.totalSize).toBe(5);
      ids.push(...page.books.map((b: { id: string }) => b.id));
      pageToken = page.nextPageToken ?? "";
    } while (pageToken);
    expect(ids).toEqual(seeded.map((b) => b.id).reverse());
    const bad = await call("petbooks.v1.BookService/ListBooks", { pageToken: "garbage" });
    expect(JSON.parse(bad.stderr)).toMatchObject({ code: "invalid_argument" });
  });

  test("grpc-js with the .proto files", async () => {
    const client = grpcJsClient(
      server.address,
      "petbooks/v1/books.proto",
      "petbooks.v1.BookService",
    );
    try {
      const { value } = await grpcJsCall(client, "ListBooks", { page_size: 1000 });
      expect(value.books).toHaveLength(5);
    } finally {
      client.close();
    }
  });

  test("logs each call as JSON, then stops on SIGTERM with exit code 0", async () => {
    const code = await server.stop("SIGTERM");
    const lines = server
      .logs()
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.find((l) => l.msg === "listening")).toMatchObject({
      url: server.url,
      database: onPostgres ? "postgres" : "embedded",
    });
    expect(lines.filter((l) => l.msg === "rpc").length).toBeGreaterThan(5);
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: "rpc",
        method: "/petbooks.v1.BookService/GetBook",
        code: "NOT_FOUND",
        protocol: "grpc",
      }),
    );
    expect(lines.map((l) => l.msg)).toContain("shutting down");
    expect(lines.at(-1)?.msg).toBe("stopped");
    expect(code).toBe(0);
  });
});
