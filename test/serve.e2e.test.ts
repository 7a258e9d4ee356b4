/** The compiled binary, end to end: serve over HTTP, then export what it stored. */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { type RunningServer, runBinary, startServer, tempDataDir } from "../src/testing/binary.ts";
import { createEmptyPostgresDatabase } from "../src/testing/database.ts";
import { pngBytes } from "../src/testing/factories.ts";
import { SETUP_TIMEOUT_MS } from "../src/testing/timeouts.ts";
import { until } from "../src/testing/until.ts";

// These start the compiled binary (built on first use): more than the default 5 s on a busy machine.
setDefaultTimeout(60_000);

const API_KEY = "e2e-api-key-0123456789";
const JWT_SECRET = "e2e-jwt-secret-0123456789-0123456789-abcdef";
const onPostgres = Boolean(process.env.DATABASE_URL);

let env: Record<string, string>;
let dropDatabase = async () => {};
let server: RunningServer | undefined;
const dataDir = tempDataDir();

beforeAll(async () => {
  env = { API_KEY, JWT_SECRET, DATA_DIR: dataDir, LOG_LEVEL: "info" };
  if (onPostgres) {
    const database = await createEmptyPostgresDatabase();
    env.DATABASE_URL = database.url;
    dropDatabase = database.drop;
  }
  server = await startServer(env);
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop("SIGKILL");
  await dropDatabase();
  rmSync(dataDir, { recursive: true, force: true });
}, SETUP_TIMEOUT_MS);

function running(): RunningServer {
  if (!server) throw new Error("petbooks serve did not start (see beforeAll)");
  return server;
}

const api = (path: string, init: RequestInit = {}) =>
  fetch(`${running().url}${path}`, {
    ...init,
    headers: { "x-api-key": API_KEY, ...(init.headers as Record<string, string>) },
  });

const json = (method: string, body: unknown): RequestInit => ({
  method,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

// biome-ignore lint/suspicious/noExplicitAny: assertions below check the JSON field by field
const body = async (res: Response): Promise<any> => res.json();

describe("petbooks serve (compiled binary)", () => {
  const created: { id: string; name: string }[] = [];
  let photoUrl = "";

  test("probes answer without a key", async () => {
    expect((await fetch(`${running().url}/healthz`)).status).toBe(200);
    expect(await body(await fetch(`${running().url}/readyz`))).toEqual({ status: "ok" });
  });

  test("creates pets, uploads a photo and serves it", async () => {
    for (const pet of [
      { name: "boy", age: 7, type: "dog" },
      { name: "girl", age: 3, type: "cat" },
      { name: "ghost", age: 1, type: "cat" },
    ]) {
      const res = await api("/pets", json("POST", pet));
      expect(res.status).toBe(201);
      created.push(await body(res));
    }
    const form = new FormData();
    form.append("file", new File([pngBytes([9, 9, 9])], "girl.png"));
    const girl = created[1] as { id: string };
    const upload = await api(`/pets/${girl.id}/photo`, { method: "POST", body: form });
    expect(upload.status).toBe(201);
    photoUrl = (await body(upload)).url;
    expect(photoUrl).toStartWith(`${running().url}/photos/`);
    const photo = await fetch(photoUrl);
    expect(photo.status).toBe(200);
    expect(photo.headers.get("content-type")).toBe("image/png");
    expect(Buffer.from(await photo.arrayBuffer()).equals(Buffer.from(pngBytes([9, 9, 9])))).toBe(
      true,
    );
  });

  test("lists newest first with the exact count, and filters", async () => {
    const all = await body(await api("/pets"));
    expect(all.count).toBe(3);
    expect(all.items.map((p: { name: string }) => p.name)).toEqual(["ghost", "girl", "boy"]);
    const withPhotos = await body(await api("/pets?has_photos=true"));
    expect(withPhotos.items.map((p: { name: string }) => p.name)).toEqual(["girl"]);
    expect(withPhotos.items[0].photos[0].url).toBe(photoUrl);
  });

  test("deletes in bulk, reporting unknown ids", async () => {
    const ghost = created[2] as { id: string };
    const res = await api("/pets", json("DELETE", { ids: [ghost.id, "nope"] }));
    expect(await body(res)).toEqual({
      deleted: 1,
      errors: [{ id: "nope", error: "Pet with the matching ID was not found." }],
    });
  });

  test("rejects a wrong key and bad input without a 500", async () => {
    const noKey = await fetch(`${running().url}/pets`);
    expect(noKey.status).toBe(401);
    const bad = await api("/pets", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{",
    });
    expect(bad.status).toBe(400);
    expect(bad.headers.get("content-type")).toBe("application/problem+json");
    const huge = await api("/pets", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "x".repeat(2 * 1024 * 1024),
    });
    expect(huge.status).toBe(413);
  });

  test.skipIf(onPostgres)(
    "a second process on the same embedded DATA_DIR fails at once",
    async () => {
      const started = performance.now();
      const result = await runBinary(["export-pets"], env);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.stderr).toContain("in use by another petbooks process");
      expect(performance.now() - started).toBeLessThan(5_000);
    },
  );

  test("logs JSON lines with request ids and never the key", () => {
    const lines = running()
      .logs()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const requests = lines.filter((l) => l.msg === "request");
    expect(requests.length).toBeGreaterThan(5);
    for (const r of requests) expect(r).toHaveProperty("request_id");
    expect(running().logs()).not.toContain(API_KEY);
    expect(running().logs()).not.toContain(JWT_SECRET);
  });

  test("vacuums and analyzes its embedded database, which has no autovacuum", async () => {
    const maintained = '"msg":"embedded database vacuumed and analyzed"';
    if (onPostgres) {
      expect(running().logs()).not.toContain(maintained);
      return;
    }
    // The first run comes right after the start, in the background.
    await until("the start's maintenance run", () => running().logs().includes(maintained), {
      timeoutMs: 50_000,
    });
  });

  test("SIGTERM stops it cleanly", async () => {
    const started = performance.now();
    expect(await running().stop("SIGTERM")).toBe(0);
    // Idle keep-alive connections from this test's fetch must not hold the shutdown open.
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(running().logs()).toContain('"msg":"stopped"');
  });

  test("export-pets writes exactly the stored pets as JSON to stdout", async () => {
    const exportEnv = { ...env, PUBLIC_URL: running().url };
    const all = await runBinary(["export-pets"], exportEnv);
    expect(all.code).toBe(0);
    const exported = JSON.parse(all.stdout);
    expect(Object.keys(exported)).toEqual(["pets"]);
    expect(exported.pets.map((p: { name: string }) => p.name)).toEqual(["girl", "boy"]);
    const girl = exported.pets[0];
    expect(Object.keys(girl)).toEqual(["id", "name", "age", "type", "photos", "created_at"]);
    expect(girl.photos).toEqual([photoUrl]);
    expect(girl.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/);

    for (const [flag, names] of [
      ["--has-photos", ["girl"]],
      ["--has-photos=true", ["girl"]],
      ["--has-photos=false", ["boy"]],
    ] as const) {
      const filtered = await runBinary(["export-pets", flag], exportEnv);
      expect(filtered.code).toBe(0);
      expect(JSON.parse(filtered.stdout).pets.map((p: { name: string }) => p.name)).toEqual([
        ...names,
      ]);
    }
  });
});
