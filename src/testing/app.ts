/** The real HTTP app over a fresh test database and a temporary photo directory. */
import { rmSync } from "node:fs";
import { type Cache, createMemoryCache } from "../cache/cache.ts";
import { createRedisCache } from "../cache/redis-cache.ts";
import { buildFeatures, type FeatureSettings, openPhotoStorage } from "../deps.ts";
import { createInProcessBus, type InProcessBus } from "../events/bus.ts";
import { createApp } from "../http/app.ts";
import { createLogger, type Logger, silentLogger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";
import { redisTestPrefix } from "./redis-keys.ts";
import { makeTempDir } from "./temp.ts";

export const TEST_API_KEY = "test-api-key-0123456789";
export const TEST_JWT_SECRET = "test-jwt-secret-0123456789-0123456789-abcdef";
export const PUBLIC_URL = "http://petbooks.test";

export interface TestApp {
  app: ReturnType<typeof createApp>;
  database: TestDatabase;
  services: TestServices;
  /** Another app over the same database, cache and bus, its features built with `overrides`. */
  appWith(overrides: Partial<FeatureSettings>): ReturnType<typeof createApp>;
  cache: Cache;
  bus: InProcessBus;
  dataDir: string;
  logLines: string[];
  /** Calls the app in-process, with the API key unless `apiKey` says otherwise. */
  request(path: string, init?: RequestInit & { apiKey?: string | null }): Promise<Response>;
  close(): Promise<void>;
}

/**
 * The cache the suite runs on: Redis when REDIS_URL is set (under a key prefix of its own), the
 * in-memory one otherwise.
 */
export async function createTestCache(ttlSeconds = 60): Promise<Cache> {
  const url = process.env.REDIS_URL;
  if (!url) return createMemoryCache(ttlSeconds);
  return createRedisCache({
    url,
    ttlSeconds,
    timeoutMs: 200,
    logger: silentLogger,
    prefix: redisTestPrefix(),
  });
}

function testServices(features: ReturnType<typeof buildFeatures>, database: TestDatabase) {
  return {
    database,
    relay: features.relay,
    pets: features.pets.service,
    auth: features.auth.service,
    books: features.books.service,
  };
}

type TestServices = ReturnType<typeof testServices>;

export async function createTestApp(
  options: { maxPhotoBytes?: number; jwtTtlSeconds?: number } = {},
): Promise<TestApp> {
  const database = await createTestDatabase();
  // Removed by close(), or at the end of the run if what follows fails.
  const dataDir = makeTempDir("petbooks-test-");
  const logLines: string[] = [];
  const logger: Logger = createLogger("debug", (line) => logLines.push(line));
  const config = {
    dataDir,
    publicUrl: PUBLIC_URL,
    maxPhotoBytes: options.maxPhotoBytes ?? 1024 * 1024,
  };
  const cache = await createTestCache().catch(async (err: unknown) => {
    await database.close();
    throw err;
  });
  const bus = createInProcessBus(silentLogger);
  const infrastructure = {
    database,
    cache,
    transport: bus,
    storage: openPhotoStorage(config, silentLogger),
  };
  const settings: FeatureSettings = {
    apiKey: TEST_API_KEY,
    jwtSecret: TEST_JWT_SECRET,
    jwtTtlSeconds: options.jwtTtlSeconds ?? 3600,
    maxPhotoBytes: config.maxPhotoBytes,
  };
  const features = buildFeatures(infrastructure, settings, silentLogger);
  const appFor = (built: ReturnType<typeof buildFeatures>) =>
    createApp({ modules: built.modules, logger, database });
  const app = appFor(features);
  return {
    app,
    database,
    services: testServices(features, database),
    appWith: (overrides) =>
      appFor(buildFeatures(infrastructure, { ...settings, ...overrides }, silentLogger)),
    cache,
    bus,
    dataDir,
    logLines,
    request(path, init = {}) {
      const { apiKey = TEST_API_KEY, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (apiKey !== null) headers.set("x-api-key", apiKey);
      return app.handle(new Request(`http://localhost${path}`, { ...rest, headers }));
    },
    async close() {
      await features.relay.stop();
      await cache.close();
      await database.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function jsonRequest(method: string, body: unknown): RequestInit {
  return {
    method,
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  };
}

export function photoForm(bytes: Uint8Array, field = "file", name = "photo.bin"): RequestInit {
  const form = new FormData();
  form.append(field, new File([bytes], name, { type: "application/octet-stream" }));
  return { method: "POST", body: form };
}

/** Response bodies in tests are checked field by field, so they are read untyped. */
// biome-ignore lint/suspicious/noExplicitAny: test assertions inspect arbitrary JSON
export async function readJson(res: Response | Promise<Response>): Promise<any> {
  return (await res).json();
}
