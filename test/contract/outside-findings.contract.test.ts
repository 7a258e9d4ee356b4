/** Defects an outside check found in the binary: each case failed before its fix. */
import { describe, expect, test } from "bun:test";
import { freePort, runBinary, tempDataDir } from "../../src/testing/binary.ts";
import { createEmptyPostgresDatabase } from "../../src/testing/database.ts";
import { SETUP_TIMEOUT_MS } from "../../src/testing/timeouts.ts";
import {
  CONTRACT_API_KEY,
  CONTRACT_JWT_SECRET,
  expectProblem,
  useContractServer,
} from "./harness.ts";

const server = useContractServer();
const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;

describe("deeply nested JSON is refused before validation, as a problem document", () => {
  for (const [path, body] of [
    ["/auth/register", `{"username":${nested(100_000)},"password":"long enough pw"}`],
    ["/pets", nested(100_000)],
  ] as const) {
    test(`POST ${path}`, async () => {
      const res = await server.api(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      const problem = await expectProblem(res, 422);
      expect(problem.errors?.[0]?.message).toContain("nested deeper than");
    });
  }
});

test("a second serve on a port in use fails instead of sharing it", async () => {
  const port = new URL(server.url).port;
  const result = await runBinary(["serve"], {
    API_KEY: CONTRACT_API_KEY,
    JWT_SECRET: CONTRACT_JWT_SECRET,
    DATA_DIR: tempDataDir(),
    HOST: "127.0.0.1",
    PORT: port,
  });
  expect(result.code).toBe(1);
  expect(result.stderr).toContain(`port ${port} in use`);
});

test("the OpenAPI document is the same, tidied one with a trailing slash", async () => {
  const plain = await server.api("/docs/json", { apiKey: null });
  const slashed = await server.api("/docs/json/", { apiKey: null });
  expect(plain.status).toBe(200);
  expect(slashed.status).toBe(200);
  expect(await slashed.json()).toEqual(await plain.json());
});

test("a token request with a malformed percent-encoding is a 400 invalid_request", async () => {
  for (const body of ["grant_type=password&username=ada&password=100%zz", "username=caf%E9"]) {
    const res = await server.api("/auth/token", {
      method: "POST",
      apiKey: null,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe("invalid_request");
  }
});

test("a malformed DATABASE_URL is named at start, without its password", async () => {
  const result = await runBinary(["migrate"], {
    DATABASE_URL: "postgres://petbooks:s3cr%t@127.0.0.1:1/petbooks",
    DATA_DIR: tempDataDir(),
  });
  expect(result.code).not.toBe(0);
  expect(result.stderr).toContain("DATABASE_URL is not a valid URL");
  expect(result.stderr).not.toContain("s3cr");
});

test("healthcheck asks the address HOST names, not 127.0.0.1", async () => {
  // A stand-in for serve, only on 127.0.0.2, on a port free on 127.0.0.1 (the kernel's pick on
  // 127.0.0.2 alone may be held there): nothing answers its port on 127.0.0.1.
  const standIn = Bun.serve({
    hostname: "127.0.0.2",
    port: await freePort(),
    fetch: (req) =>
      new Response(null, { status: new URL(req.url).pathname === "/readyz" ? 200 : 404 }),
  });
  try {
    const port = String(standIn.port);
    expect((await runBinary(["healthcheck"], { HOST: "127.0.0.2", PORT: port })).code).toBe(0);
    const wildcard = await runBinary(["healthcheck"], { HOST: "0.0.0.0", PORT: port });
    expect(wildcard.code).toBe(1);
    expect(wildcard.stderr).toContain(`no answer on port ${port} (http://127.0.0.1:${port})`);
  } finally {
    standIn.stop(true);
  }
});

test.skipIf(!process.env.DATABASE_URL)(
  "export-pets on a database never migrated says to migrate, and writes nothing to stdout",
  async () => {
    const database = await createEmptyPostgresDatabase();
    try {
      const result = await runBinary(["export-pets"], { DATABASE_URL: database.url });
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.stderr).toStartWith(
        "petbooks: the database has no petbooks tables: run `petbooks migrate` first",
      );
    } finally {
      await database.drop();
    }
  },
  SETUP_TIMEOUT_MS,
);
