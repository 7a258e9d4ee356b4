import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ALLOCATOR_ENV, ROOT } from "./processes.ts";
import { petbooksEnv } from "./servers.ts";

/** The `ENV name=value` settings of the Dockerfile's final stage. */
async function imageEnv(): Promise<Record<string, string>> {
  const dockerfile = await Bun.file(join(ROOT, "Dockerfile")).text();
  const lastStage = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
  const env: Record<string, string> = {};
  for (const [, settings] of lastStage.matchAll(/^ENV (.+)$/gm)) {
    for (const [, name, value] of (settings ?? "").matchAll(/(\w+)=(\S+)/g)) {
      env[name as string] = value as string;
    }
  }
  return env;
}

describe("the benches' servers", () => {
  test("run with the allocator settings the Docker image ships, and no others", async () => {
    const shipped = await imageEnv();
    const allocator = Object.entries(shipped).filter(([name]) => name.startsWith("MIMALLOC_"));
    expect(allocator.length).toBeGreaterThan(0);
    expect(Object.fromEntries(allocator)).toEqual(ALLOCATOR_ENV);
    expect(petbooksEnv({})).toMatchObject(ALLOCATOR_ENV);
  });
});
