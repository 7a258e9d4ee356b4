/**
 * Key prefixes of the suite's Redis tests: each cache or counter store a test opens gets its own,
 * and every key under them is removed when the test run ends (preload.ts registers the cleanup).
 * Most keys expire by themselves, but a cache's epoch counter (`<prefix>sequence`) never does.
 */
import { createClient } from "redis";

const prefixes = new Set<string>();

/** A fresh prefix under `petbooks-test:`, `kind` first (`ratelimit:`), removed after the run. */
export function redisTestPrefix(kind = ""): string {
  const prefix = `petbooks-test:${kind}${crypto.randomUUID()}:`;
  prefixes.add(prefix);
  return prefix;
}

/** Deletes every key under the prefixes handed out so far, on REDIS_URL. */
export async function removeRedisTestKeys(): Promise<void> {
  const url = process.env.REDIS_URL;
  const taken = [...prefixes];
  prefixes.clear();
  if (!url || taken.length === 0) return;
  const client = createClient({ url });
  client.on("error", () => {});
  await client.connect();
  try {
    for (const prefix of taken) {
      // The prefixes hold no glob characters: letters, digits, `-` and `:`.
      for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
        if (keys.length > 0) await client.unlink(keys);
      }
    }
  } finally {
    client.destroy();
  }
}
