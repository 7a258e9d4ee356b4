/** Defects an outside check found in the binary: each case failed before its fix. */
import { describe, expect, test } from "bun:test";
import { runBinary, tempDataDir } from "../binary.ts";
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
