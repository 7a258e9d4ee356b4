/** Loaded before every test file (bunfig.toml): says once which database the suite runs on. */
import { afterAll } from "bun:test";
import { removeRedisTestKeys } from "./redis-keys.ts";
import { removeTempDirs } from "./temp.ts";
import { TEARDOWN_TIMEOUT_MS } from "./timeouts.ts";

const target = process.env.DATABASE_URL ? "PostgreSQL (DATABASE_URL)" : "embedded PGlite";
if (!(globalThis as { __petbooksAnnounced?: boolean }).__petbooksAnnounced) {
  (globalThis as { __petbooksAnnounced?: boolean }).__petbooksAnnounced = true;
  process.stderr.write(`petbooks tests: database = ${target}\n`);
}

// A hook in the preload runs once, after the last test file.
afterAll(removeTempDirs, TEARDOWN_TIMEOUT_MS);
afterAll(removeRedisTestKeys, TEARDOWN_TIMEOUT_MS);
