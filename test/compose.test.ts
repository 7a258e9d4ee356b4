/** The compose file as docker-compose resolves it (no Docker engine needed: `config` only). */

import { describe, expect, test } from "bun:test";
import { copyFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { runCommand } from "../scripts/run-command.ts";
import { makeTempDir } from "../src/testing/temp.ts";

const compose = Bun.which("docker-compose");
const root = join(import.meta.dir, "..");

interface Service {
  environment?: Record<string, string>;
  volumes?: (string | { target: string; source?: string })[];
  ports?: (string | { target: number; published: number | string })[];
}

/** `docker-compose config` with .env.example as .env plus the given lines. */
async function resolved(extraEnv: string): Promise<Record<string, Service>> {
  const dir = makeTempDir("petbooks-compose-");
  for (const file of ["docker-compose.yml", "Dockerfile", ".env.example"]) {
    copyFileSync(join(root, file), join(dir, file));
  }
  await Bun.write(
    join(dir, ".env"),
    `${await Bun.file(join(root, ".env.example")).text()}\n${extraEnv}\n`,
  );
  const {
    code,
    stdout: out,
    stderr: err,
  } = await runCommand([compose as string, "config"], {
    cwd: dir,
  });
  rmSync(dir, { recursive: true, force: true });
  if (code !== 0) throw new Error(`docker-compose config failed: ${err}`);
  return (Bun.YAML.parse(out) as { services: Record<string, Service> }).services;
}

const targets = (service: Service | undefined) =>
  (service?.volumes ?? []).map((v) => (typeof v === "string" ? (v.split(":")[1] ?? "") : v.target));

describe.skipIf(!compose)("docker-compose.yml", () => {
  test("PORT, GRPC_PORT or HOST in .env cannot move a listener away from its port mapping", async () => {
    const services = await resolved("PORT=4000\nGRPC_PORT=4001\nHOST=127.0.0.1");
    for (const name of ["api", "grpc"]) {
      expect(services[name]?.environment).toMatchObject({
        HOST: "0.0.0.0",
        PORT: "3000",
        GRPC_PORT: "50051",
      });
    }
    const published = (s: Service | undefined) =>
      (s?.ports ?? []).map((p) => (typeof p === "string" ? p.split(":").at(-1) : String(p.target)));
    expect(published(services.api)).toEqual(["3000"]);
    expect(published(services.grpc)).toEqual(["50051"]);
  }, 60_000);

  test("a POSTGRES_PASSWORD with URL characters in it reaches petbooks unchanged, outside the URL", async () => {
    const password = "p@ss/w%rd#1?";
    const services = await resolved(`POSTGRES_PASSWORD='${password}'`);
    expect(services.postgres?.environment?.POSTGRES_PASSWORD).toBe(password);
    for (const name of ["api", "grpc", "migrate"]) {
      const env = services[name]?.environment ?? {};
      expect(env.PGPASSWORD).toBe(password);
      expect(env.PGUSER).toBe(services.postgres?.environment?.POSTGRES_USER);
      expect(env.DATABASE_URL).toBe("postgres://postgres:5432/petbooks");
    }
  }, 60_000);

  test("Kafka writes its log where its volume is, so topics and offsets survive a recreate", async () => {
    const kafka = (await resolved("")).kafka;
    const logDirs = kafka?.environment?.KAFKA_LOG_DIRS;
    expect(logDirs).toBeDefined();
    expect(targets(kafka)).toContain(logDirs as string);
  }, 60_000);
});
