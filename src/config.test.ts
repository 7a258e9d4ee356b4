import { describe, expect, test } from "bun:test";
import { loadConfig, publicUrlFor } from "./config.ts";
import { ConfigError } from "./errors.ts";

const KEY = "k".repeat(16);

describe("loadConfig", () => {
  test("embedded defaults", () => {
    const config = loadConfig({ API_KEY: KEY }, { apiKey: true });
    expect(config).toEqual({
      apiKey: KEY,
      databaseUrl: undefined,
      databasePoolSize: 10,
      dataDir: "./data",
      host: "0.0.0.0",
      port: 3000,
      grpcPort: 50051,
      publicUrl: "http://localhost:3000",
      publicUrlGiven: false,
      maxPhotoBytes: 10 * 1024 * 1024,
      logLevel: "info",
      jwtSecret: undefined,
      jwtTtlSeconds: 3600,
      redisUrl: undefined,
      redisTimeoutMs: 50,
      cacheTtlSeconds: 60,
      kafkaBrokers: [],
      kafkaTopic: "petbooks.books",
      kafkaGroupId: "petbooks-grpc",
      outboxRetentionHours: 24,
      outboxStallSeconds: 60,
    });
  });

  test("reads every variable", () => {
    const config = loadConfig({
      API_KEY: KEY,
      DATABASE_URL: "postgresql://u:p@db:5432/petbooks",
      DATABASE_POOL_SIZE: "20",
      DATA_DIR: "/var/lib/petbooks",
      HOST: "127.0.0.1",
      PORT: "8080",
      GRPC_PORT: "9090",
      PUBLIC_URL: "https://pets.example.com/",
      MAX_PHOTO_BYTES: "2048",
      LOG_LEVEL: "WARN",
    });
    expect(config.databaseUrl).toBe("postgresql://u:p@db:5432/petbooks");
    expect(config.databasePoolSize).toBe(20);
    expect(config.port).toBe(8080);
    expect(config.grpcPort).toBe(9090);
    expect(config.publicUrl).toBe("https://pets.example.com");
    expect(config.publicUrlGiven).toBe(true);
    expect(config.maxPhotoBytes).toBe(2048);
    expect(config.logLevel).toBe("warn");
  });

  test("links follow the bound port unless PUBLIC_URL is set (PORT=0 binds a random one)", () => {
    const derived = loadConfig({ PORT: "0" });
    expect(derived.publicUrlGiven).toBe(false);
    expect(publicUrlFor(derived, 41234)).toBe("http://localhost:41234");
    const blank = loadConfig({ PORT: "0", PUBLIC_URL: "  " });
    expect(publicUrlFor(blank, 41234)).toBe("http://localhost:41234");
    const given = loadConfig({ PORT: "0", PUBLIC_URL: "https://pets.example.com/" });
    expect(publicUrlFor(given, 41234)).toBe("https://pets.example.com");
  });

  test("reads the books, cache and events variables", () => {
    const config = loadConfig({
      JWT_SECRET: "s".repeat(32),
      JWT_TTL: "900",
      REDIS_URL: "redis://cache:6379/0",
      REDIS_TIMEOUT_MS: "100",
      CACHE_TTL: "30",
      KAFKA_BROKERS: " kafka-1:9092, kafka-2:9092 ",
      KAFKA_TOPIC: "books.events",
      OUTBOX_RETENTION_HOURS: "72",
      OUTBOX_STALL_SECONDS: "120",
    });
    expect(config).toMatchObject({
      jwtSecret: "s".repeat(32),
      jwtTtlSeconds: 900,
      redisUrl: "redis://cache:6379/0",
      redisTimeoutMs: 100,
      cacheTtlSeconds: 30,
      kafkaBrokers: ["kafka-1:9092", "kafka-2:9092"],
      kafkaTopic: "books.events",
      outboxRetentionHours: 72,
      outboxStallSeconds: 120,
    });
  });

  test("JWT_SECRET is required where asked, and never echoed", () => {
    expect(() => loadConfig({}, { jwtSecret: true })).toThrow(/JWT_SECRET is required/);
    expect(() => loadConfig({ JWT_SECRET: "short-secret" })).not.toThrow(/short-secret/);
  });

  test("broker credentials given by mistake are not echoed", () => {
    expect(() => loadConfig({ KAFKA_BROKERS: "user:secret@kafka:9092" })).not.toThrow(/secret/);
  });

  test("the API key is only required where asked", () => {
    expect(loadConfig({}).apiKey).toBeUndefined();
    expect(() => loadConfig({}, { apiKey: true })).toThrow(/API_KEY is required/);
  });

  test.each([
    [{ API_KEY: "short" }, "API_KEY must be at least 16"],
    [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL must be a postgres://"],
    [{ PORT: "70000" }, "PORT must be an integer from 0 to 65535"],
    [{ PORT: "80a" }, "PORT must be an integer"],
    [{ GRPC_PORT: "65536" }, "GRPC_PORT must be an integer from 0 to 65535"],
    [{ GRPC_PORT: "-1" }, "GRPC_PORT must be an integer"],
    [{ MAX_PHOTO_BYTES: "0" }, "MAX_PHOTO_BYTES must be an integer from 1"],
    [{ MAX_PHOTO_BYTES: "-5" }, "MAX_PHOTO_BYTES must be an integer"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL must be one of debug, info, warn, error"],
    [{ PUBLIC_URL: "ftp://x" }, "PUBLIC_URL must be an http:// or https:// URL"],
    [{ DATABASE_POOL_SIZE: "0" }, "DATABASE_POOL_SIZE must be an integer from 1"],
    [{ JWT_SECRET: "too-short" }, "JWT_SECRET must be at least 32 bytes"],
    [{ JWT_TTL: "10" }, "JWT_TTL must be an integer from 60"],
    [{ REDIS_URL: "http://cache" }, "REDIS_URL must be a redis://"],
    [{ CACHE_TTL: "-1" }, "CACHE_TTL must be an integer from 0"],
    [{ KAFKA_BROKERS: "kafka:9092,,other" }, "KAFKA_BROKERS: entry 2 is empty"],
    [{ KAFKA_BROKERS: "user:secret@kafka:9092" }, "is not host:port"],
    [{ KAFKA_TOPIC: "bad topic" }, "KAFKA_TOPIC must be a valid Kafka topic name"],
    [{ OUTBOX_STALL_SECONDS: "0" }, "OUTBOX_STALL_SECONDS must be an integer from 1 to 86400"],
  ])("rejects %j", (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  test("names every bad variable in one message", () => {
    try {
      loadConfig({ PORT: "x", LOG_LEVEL: "loud", MAX_PHOTO_BYTES: "big" }, { apiKey: true });
      throw new Error("expected a ConfigError");
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const { problems } = err as ConfigError;
      expect(problems).toHaveLength(4);
      expect((err as Error).message).toContain("API_KEY");
      expect((err as Error).message).toContain("PORT");
      expect((err as Error).message).toContain("LOG_LEVEL");
      expect((err as Error).message).toContain("MAX_PHOTO_BYTES");
    }
  });

  test("an invalid API key is never echoed", () => {
    expect(() => loadConfig({ API_KEY: "secret-ish" })).not.toThrow(/secret-ish/);
  });
});
