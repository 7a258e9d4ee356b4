import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../logger.ts";
import { redisTestPrefix } from "../testing/redis-keys.ts";
import { startTcpProxy } from "../testing/tcp-proxy.ts";
import { TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { until } from "../testing/until.ts";
import { type Cache, createMemoryCache, createNoCache, UNAVAILABLE } from "./cache.ts";
import { createRedisCache } from "./redis-cache.ts";

const redisUrl = process.env.REDIS_URL;
const caches: Cache[] = [];
afterAll(async () => {
  for (const cache of caches) await cache.close();
}, TEARDOWN_TIMEOUT_MS);

const implementations: [string, () => Promise<Cache>][] = [
  ["memory", async () => createMemoryCache(60)],
  ...(redisUrl
    ? ([
        [
          "redis",
          () =>
            createRedisCache({
              url: redisUrl,
              ttlSeconds: 60,
              timeoutMs: 500,
              logger: createLogger("error", () => {}),
              prefix: redisTestPrefix(),
            }),
        ],
      ] as [string, () => Promise<Cache>][])
    : []),
];

describe.each(implementations)("%s cache", (_, make) => {
  const open = async () => {
    const cache = await make();
    caches.push(cache);
    return cache;
  };

  test("a write after a read is a hit for the next read", async () => {
    const cache = await open();
    const miss = await cache.read("book:1", "");
    expect(miss.value).toBeUndefined();
    await cache.write("book:1", "", miss.version, "one");
    expect((await cache.read("book:1", "")).value).toBe("one");
  });

  test("invalidation hides every key of the namespace, and only that namespace", async () => {
    const cache = await open();
    for (const key of ["a", "b"]) {
      const r = await cache.read("list", key);
      await cache.write("list", key, r.version, key);
    }
    const other = await cache.read("book:2", "");
    await cache.write("book:2", "", other.version, "kept");
    await cache.invalidate(["list"]);
    expect((await cache.read("list", "a")).value).toBeUndefined();
    expect((await cache.read("list", "b")).value).toBeUndefined();
    expect((await cache.read("book:2", "")).value).toBe("kept");
  });

  test("a reader that raced with a write cannot store what it read before the write", async () => {
    const cache = await open();
    const before = await cache.read("book:3", ""); // reader starts, reads the database...
    await cache.invalidate(["book:3"]); // ...meanwhile a write commits and invalidates...
    await cache.write("book:3", "", before.version, "stale"); // ...then the reader fills the cache
    expect((await cache.read("book:3", "")).value).toBeUndefined();
  });

  test("versions never repeat, even across many invalidations", async () => {
    const cache = await open();
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      await cache.invalidate(["ns"]);
      seen.add((await cache.read("ns", "k")).version);
    }
    expect(seen.size).toBe(20);
  });
});

test("with caching off nothing is ever a hit", async () => {
  const cache = createNoCache();
  const r = await cache.read("ns", "k");
  await cache.write("ns", "k", r.version, "v");
  expect((await cache.read("ns", "k")).value).toBeUndefined();
});

test("the memory cache stays within its size", async () => {
  const cache = createMemoryCache(60, 3);
  for (const key of ["a", "b", "c", "d"])
    await cache.write("ns", key, (await cache.read("ns", key)).version, key);
  expect((await cache.read("ns", "a")).value).toBeUndefined();
  expect((await cache.read("ns", "d")).value).toBe("d");
});

test("Redis that stays unreachable at startup fails with a clear message", async () => {
  const started = performance.now();
  const err = await createRedisCache({
    url: "redis://:hunter2@127.0.0.1:1",
    ttlSeconds: 60,
    timeoutMs: 50,
    logger: createLogger("error", () => {}),
    connectAttempts: 2,
  }).catch((e) => e as Error);
  expect(err).toBeInstanceOf(Error);
  expect((err as Error).message).toContain("cannot reach Redis at redis://:***@127.0.0.1:1");
  expect((err as Error).message).not.toContain("hunter2");
  // It gives up instead of hanging; the margin is wide so a busy machine cannot fail it.
  expect(performance.now() - started).toBeLessThan(30_000);
}, 60_000);

const redisServer = Bun.which("redis-server");
const REDIS_TEST_TIMEOUT_MS = 2_000;

describe.skipIf(!redisServer)("Redis outage (a private redis-server)", () => {
  async function freePort() {
    return new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
  }

  /** With `dir`, data survives a restart (append-only file, fsync on every write). */
  async function startRedis(port: number, dir?: string) {
    const persistence = dir
      ? ["--appendonly", "yes", "--appendfsync", "always", "--dir", dir]
      : ["--appendonly", "no"];
    const proc = Bun.spawn(
      [
        redisServer as string,
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        ...persistence,
      ],
      {
        stdout: "ignore",
        stderr: "ignore",
      },
    );
    // Polls until it accepts connections; the deadline is generous for a busy machine.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && proc.exitCode === null) {
      const ok = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } })
        .then((s) => {
          s.end();
          return true;
        })
        .catch(() => false);
      if (ok) return proc;
      await Bun.sleep(20);
    }
    proc.kill();
    throw new Error("redis-server did not start");
  }

  test("reads fall back, one warning per interval, and caching resumes by itself", async () => {
    const port = await freePort();
    let redis = await startRedis(port);
    const warnings: string[] = [];
    const cache = await createRedisCache({
      url: `redis://127.0.0.1:${port}`,
      ttlSeconds: 60,
      // Long enough that a busy machine cannot turn a healthy read into a fallback.
      timeoutMs: REDIS_TEST_TIMEOUT_MS,
      warnEveryMs: 60_000,
      logger: createLogger("info", (line) => warnings.push(line)),
    });
    caches.push(cache);
    try {
      const first = await cache.read("book:x", "");
      await cache.write("book:x", "", first.version, "v1");
      expect((await cache.read("book:x", "")).value).toBe("v1");

      redis.kill("SIGKILL");
      await redis.exited;
      const started = performance.now();
      for (let i = 0; i < 20; i++) {
        const r = await cache.read("book:x", "");
        expect(r).toEqual({ value: undefined, version: UNAVAILABLE });
      }
      await cache.invalidate(["book:x"]); // lost while Redis is down
      // Each call is bounded by the timeout instead of waiting for a reconnect; the margin is
      // wide so only a hang, not a busy machine, can fail it.
      expect(performance.now() - started).toBeLessThan(21 * REDIS_TEST_TIMEOUT_MS + 20_000);
      const warned = warnings.map((l) => JSON.parse(l)).filter((l) => l.level === "warn");
      expect(warned).toHaveLength(1);

      redis = await startRedis(port);
      let resumed = false;
      const deadline = Date.now() + 30_000; // generous: no speed assumed
      while (!resumed && Date.now() < deadline) {
        const r = await cache.read("book:x", "");
        if (r.version !== UNAVAILABLE) {
          await cache.write("book:x", "", r.version, "v2");
          resumed = (await cache.read("book:x", "")).value === "v2";
        }
        if (!resumed) await Bun.sleep(50);
      }
      expect(resumed).toBe(true);
      expect(warnings.join("")).toContain("redis cache available again");
    } finally {
      redis.kill("SIGKILL");
    }
  }, 180_000);

  test("an invalidation lost during an outage cannot let a stale entry survive it", async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "petbooks-redis-"));
    let redis = await startRedis(port, dir);
    const cache = await createRedisCache({
      url: `redis://127.0.0.1:${port}`,
      ttlSeconds: 60,
      timeoutMs: REDIS_TEST_TIMEOUT_MS,
      logger: createLogger("error", () => {}),
    });
    caches.push(cache);
    try {
      const r = await cache.read("book:y", "");
      await cache.write("book:y", "", r.version, "old");
      // Freeze Redis, let the invalidation time out, then kill it with the command unread:
      // it restarts from disk with the old entry, like a partition that healed.
      redis.kill("SIGSTOP");
      await cache.invalidate(["book:y"]);
      redis.kill("SIGKILL");
      await redis.exited;
      redis = await startRedis(port, dir);
      let value: string | undefined = "still unavailable";
      const deadline = Date.now() + 30_000; // generous: no speed assumed
      while (Date.now() < deadline) {
        const read = await cache.read("book:y", "");
        if (read.version !== UNAVAILABLE) {
          value = read.value;
          break;
        }
        await Bun.sleep(50);
      }
      expect(value).toBeUndefined();
    } finally {
      redis.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});

describe.skipIf(!redisUrl)("redis cache behind a link that loses answers (needs REDIS_URL)", () => {
  test("never answers a read with another key's value, and heals by itself", async () => {
    const target = new URL(redisUrl as string);
    const proxy = startTcpProxy({ hostname: target.hostname, port: Number(target.port || 6379) });
    target.hostname = "127.0.0.1";
    target.port = String(proxy.port);
    const cache = await createRedisCache({
      url: target.toString(),
      ttlSeconds: 60,
      timeoutMs: 100,
      logger: createLogger("error", () => {}),
      prefix: redisTestPrefix(),
    });
    caches.push(cache);
    try {
      const keys = Array.from({ length: 10 }, (_, i) => `book:${i}`);
      const valueFor = (key: string) => `value of ${key}`;
      for (const key of keys) {
        const read = await cache.read(key, "");
        await cache.write(key, "", read.version, valueFor(key));
      }
      proxy.drop();
      // Their answers are lost: each read times out, and its command stays in the client's queue.
      for (const key of keys.slice(0, 5)) expect((await cache.read(key, "")).value).toBeUndefined();
      proxy.resume();
      const wrong: string[] = [];
      const healed = await until(
        "a cached value read again",
        async () => {
          const reads = await Promise.all(keys.map((key) => cache.read(key, "")));
          reads.forEach((read, i) => {
            const key = keys[i] as string;
            if (read.value !== undefined && read.value !== valueFor(key)) {
              wrong.push(`${key}: ${read.value}`);
            }
          });
          return reads.some((read) => read.value !== undefined);
        },
        { everyMs: 20, timeoutMs: 30_000 },
      );
      expect(healed).toBe(true);
      expect(wrong).toEqual([]);
    } finally {
      proxy.stop();
    }
  }, 60_000);
});

describe.skipIf(!redisUrl)(
  "two instances, one of which loses Redis for a write (needs REDIS_URL)",
  () => {
    test("the other stops serving the old entry soon after the writer reaches Redis again", async () => {
      const prefix = redisTestPrefix();
      const target = new URL(redisUrl as string);
      const proxy = startTcpProxy({ hostname: target.hostname, port: Number(target.port || 6379) });
      const viaProxy = new URL(target);
      viaProxy.hostname = "127.0.0.1";
      viaProxy.port = String(proxy.port);
      const open = (url: string) =>
        createRedisCache({
          url,
          ttlSeconds: 600,
          timeoutMs: 100,
          healEveryMs: 50,
          logger: createLogger("error", () => {}),
          prefix,
        });
      const writer = await open(viaProxy.toString());
      const reader = await open(target.toString());
      caches.push(writer, reader);
      try {
        const first = await reader.read("book:z", "");
        await reader.write("book:z", "", first.version, "before");
        expect((await reader.read("book:z", "")).value).toBe("before");
        proxy.cut("refuse");
        await writer.invalidate(["book:z"]); // lost: the writer cannot reach Redis
        expect((await reader.read("book:z", "")).value).toBe("before");
        proxy.resume();
        // No further operation of the writer's: it makes the lost invalidation good by itself.
        await until(
          "the reader to miss",
          async () => (await reader.read("book:z", "")).value === undefined,
          {
            everyMs: 20,
            timeoutMs: 30_000,
          },
        );
      } finally {
        proxy.stop();
      }
    }, 60_000);
  },
);
