import { describe, expect, test } from "bun:test";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { loadConfig, parseCorsOrigins, publicUrlFor } from "./config.ts";
import { ConfigError } from "./errors.ts";

const KEY = "k".repeat(16);

describe("loadConfig", () => {
  test("embedded defaults", () => {
    const config = loadConfig({ API_KEY: KEY }, { apiKey: true });
    expect(config).toEqual({
      apiKey: KEY,
      databaseUrl: undefined,
      databasePoolSize: 10,
      databaseTimeoutMs: 5000,
      exportStallTimeoutMs: 60_000,
      dataDir: "./data",
      host: "0.0.0.0",
      port: 3000,
      grpcPort: 50051,
      publicUrl: "http://localhost:3000",
      publicUrlGiven: false,
      maxPhotoBytes: 10 * 1024 * 1024,
      s3: undefined,
      logLevel: "info",
      jwtSecret: undefined,
      jwtTtlSeconds: 3600,
      redisUrl: undefined,
      redisTimeoutMs: 50,
      redisKeyPrefix: "petbooks:",
      cacheTtlSeconds: 60,
      kafkaBrokers: [],
      kafkaTopic: "petbooks.books",
      kafkaGroupId: "petbooks-grpc",
      outboxRetentionHours: 24,
      outboxStallSeconds: 60,
      corsOrigins: [],
      trustedProxies: [],
      authUsernameFailures: 10,
      authUsernameWindowSeconds: 900,
      authAddressAttempts: 100,
      authAddressWindowSeconds: 60,
      passwordHashConcurrency: availableParallelism(),
      passwordHashQueue: 16 * availableParallelism(),
      passwordHashWaitMs: 5000,
      grpcAuth: "bearer",
      metrics: { enabled: true, token: undefined, port: 9464 },
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
      REDIS_KEY_PREFIX: "staging:petbooks:",
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
      redisKeyPrefix: "staging:petbooks:",
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
    [{ DATABASE_URL: "postgres://u:100%sure@db/petbooks" }, "DATABASE_URL is not a valid URL"],
    [{ DATABASE_URL: "postgres://u:p@db:port/petbooks" }, "DATABASE_URL is not a valid URL"],
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
    [{ REDIS_URL: "redis://127.0.0.1:99999/0" }, "REDIS_URL is not a valid URL"],
    [{ REDIS_URL: "redis://[bad/0" }, "REDIS_URL is not a valid URL"],
    [{ REDIS_URL: "redis://127.0.0.1:6379/abc" }, "REDIS_URL's path must be a database number"],
    [{ REDIS_KEY_PREFIX: "p".repeat(65) }, "REDIS_KEY_PREFIX must be 1 to 64 letters"],
    [{ REDIS_KEY_PREFIX: "petbooks*" }, "REDIS_KEY_PREFIX must be 1 to 64 letters"],
    [{ REDIS_KEY_PREFIX: "a b" }, "REDIS_KEY_PREFIX must be 1 to 64 letters"],
    [{ HOST: "999.1.1.1" }, 'HOST must be an IP address or a host name (got "999.1.1.1")'],
    [{ HOST: "web server" }, "HOST must be an IP address or a host name"],
    [{ CACHE_TTL: "-1" }, "CACHE_TTL must be an integer from 0"],
    [{ KAFKA_BROKERS: "kafka:9092,,other" }, "KAFKA_BROKERS: entry 2 is empty"],
    [{ KAFKA_BROKERS: "user:secret@kafka:9092" }, "is not host:port"],
    [{ KAFKA_TOPIC: "bad topic" }, "KAFKA_TOPIC must be a valid Kafka topic name"],
    [{ OUTBOX_STALL_SECONDS: "0" }, "OUTBOX_STALL_SECONDS must be an integer from 1 to 86400"],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: "jaeger:4318" },
      "OTEL_EXPORTER_OTLP_ENDPOINT must be an http://",
    ],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: "http://[jaeger" },
      "OTEL_EXPORTER_OTLP_ENDPOINT is not a valid URL",
    ],
    [
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "grpc://collector:4317" },
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http:// or https:// URL (OTLP over HTTP)",
    ],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: "http://jaeger:4318", OTEL_TRACES_SAMPLER: "sometimes" },
      'OTEL_TRACES_SAMPLER must be one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio (got "sometimes")',
    ],
    [
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://jaeger:4318",
        OTEL_TRACES_SAMPLER: "traceidratio",
        OTEL_TRACES_SAMPLER_ARG: "10%",
      },
      'OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1 (got "10%")',
    ],
  ])("rejects %j", (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  test("tracing variables are checked only when they turn tracing on, endpoints never shown", () => {
    const base = { API_KEY: "k".repeat(16), JWT_SECRET: "s".repeat(32) };
    const off = { OTEL_EXPORTER_OTLP_ENDPOINT: "nonsense", OTEL_TRACES_SAMPLER: "sometimes" };
    expect(() => loadConfig({ ...base, ...off, OTEL_SDK_DISABLED: "true" })).not.toThrow();
    expect(() => loadConfig({ ...base, ...off, OTEL_TRACES_EXPORTER: "none" })).not.toThrow();
    expect(() =>
      loadConfig({
        ...base,
        OTEL_EXPORTER_OTLP_ENDPOINT: "https://user:pw@collector.example:4318",
        OTEL_TRACES_SAMPLER: "ParentBased_TraceIdRatio",
        OTEL_TRACES_SAMPLER_ARG: "0.25",
      }),
    ).not.toThrow();
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "ftp://user:s3cret@x" })).toThrow(
      /^(?![\s\S]*s3cret)[\s\S]*OTEL_EXPORTER_OTLP_ENDPOINT must be/,
    );
  });

  test("a malformed DATABASE_URL is named, its password never shown", () => {
    expect(() => loadConfig({ DATABASE_URL: "postgres://u:s3cr%t-pw@db/petbooks" })).toThrow(
      /^(?![\s\S]*s3cr)[\s\S]*DATABASE_URL is not a valid URL/,
    );
    // What postgres.js reads stays accepted: several hosts, a socket through PGHOST, escapes.
    for (const url of [
      "postgres://u:p@db1:5432,db2:5433/petbooks",
      "postgres:///petbooks",
      "postgresql://u:p%40ss%25@db/petbooks?sslmode=require",
    ]) {
      expect(loadConfig({ DATABASE_URL: url }).databaseUrl).toBe(url);
    }
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

  test("HOST takes addresses and host names, REDIS_URL a database number or none", () => {
    for (const host of [
      "0.0.0.0",
      "127.0.0.1",
      "::",
      "::1",
      "localhost",
      "api.internal",
      "petbooks-1",
    ]) {
      expect(loadConfig({ HOST: host }).host).toBe(host);
    }
    for (const url of [
      "redis://cache",
      "redis://cache:6379",
      "redis://cache:6379/",
      "rediss://u:p@cache:6380/3",
    ]) {
      expect(loadConfig({ REDIS_URL: url }).redisUrl).toBe(url);
    }
  });

  test("a malformed REDIS_URL is named, its password never shown", () => {
    expect(() => loadConfig({ REDIS_URL: "redis://u:s3cret@cache:99999/0" })).toThrow(
      /^(?![\s\S]*s3cret)[\s\S]*REDIS_URL is not a valid URL/,
    );
  });

  test("an invalid API key is never echoed", () => {
    expect(() => loadConfig({ API_KEY: "secret-ish" })).not.toThrow(/secret-ish/);
  });
});

describe("abuse protection and gRPC authentication", () => {
  test("reads the limits, the hashing queue, the trusted proxies and GRPC_AUTH", () => {
    const config = loadConfig({
      AUTH_USERNAME_FAILURES: "5",
      AUTH_USERNAME_WINDOW_SECONDS: "600",
      AUTH_ADDRESS_ATTEMPTS: "50",
      AUTH_ADDRESS_WINDOW_SECONDS: "30",
      PASSWORD_HASH_CONCURRENCY: "3",
      PASSWORD_HASH_WAIT_MS: "1500",
      TRUSTED_PROXIES: " 10.0.0.0/8, 127.0.0.1 ,::1, fd00::/8 ",
      GRPC_AUTH: "None",
    });
    expect(config).toMatchObject({
      authUsernameFailures: 5,
      authUsernameWindowSeconds: 600,
      authAddressAttempts: 50,
      authAddressWindowSeconds: 30,
      passwordHashConcurrency: 3,
      // The queue follows the concurrency unless it is set.
      passwordHashQueue: 48,
      passwordHashWaitMs: 1500,
      trustedProxies: ["10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"],
      grpcAuth: "none",
    });
  });

  test("refuses what cannot mean anything, naming each variable", () => {
    let problems: string[] = [];
    try {
      loadConfig({
        AUTH_USERNAME_FAILURES: "0",
        PASSWORD_HASH_CONCURRENCY: "none",
        TRUSTED_PROXIES: "10.0.0.0/33, proxy.internal, 127.0.0.1",
        GRPC_AUTH: "token",
      });
    } catch (err) {
      problems = (err as ConfigError).problems;
    }
    expect(problems).toEqual([
      'GRPC_AUTH must be bearer or none (got "token")',
      expect.stringMatching(
        /^TRUSTED_PROXIES must be .*\(not: 10\.0\.0\.0\/33, proxy\.internal\)$/,
      ),
      expect.stringMatching(/^PASSWORD_HASH_CONCURRENCY must be an integer/),
      expect.stringMatching(/^AUTH_USERNAME_FAILURES must be an integer/),
    ]);
  });

  test("grpc needs JWT_SECRET to check tokens, unless GRPC_AUTH=none", () => {
    expect(() => loadConfig({}, { grpc: true })).toThrow(
      /JWT_SECRET is required by grpc .*GRPC_AUTH=none/,
    );
    expect(loadConfig({ GRPC_AUTH: "none" }, { grpc: true }).jwtSecret).toBeUndefined();
    const secret = "s".repeat(32);
    expect(loadConfig({ JWT_SECRET: secret }, { grpc: true }).jwtSecret).toBe(secret);
    // Other commands do not ask for it.
    expect(() => loadConfig({})).not.toThrow();
  });
});

describe("placeholders", () => {
  // The values .env.example ships, and the README's old quick start ones.
  const API_KEY_PLACEHOLDERS = ["change-me-to-a-long-random-string", "dev-key-change-me-please"];
  const JWT_PLACEHOLDERS = [
    "change-me-to-32-or-more-random-bytes-0000",
    "dev-jwt-secret-change-me-0123456789ab",
    "CHANGEME-changeme-changeme-changeme-0000",
  ];

  test.each(API_KEY_PLACEHOLDERS)(
    "API_KEY=%s is refused, naming the variable, not the value",
    (v) => {
      let message = "";
      try {
        loadConfig({ API_KEY: v }, { apiKey: true });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toContain("API_KEY is still a placeholder");
      expect(message).toContain("openssl rand -hex 32");
      expect(message).not.toContain(v);
    },
  );

  test.each(JWT_PLACEHOLDERS)("JWT_SECRET=%s is refused, by every command", (v) => {
    expect(() => loadConfig({ JWT_SECRET: v })).toThrow("JWT_SECRET is still a placeholder");
    expect(() => loadConfig({ JWT_SECRET: v })).not.toThrow(v);
    expect(() => loadConfig({ JWT_SECRET: v }, { grpc: true })).toThrow(/placeholder/);
  });

  test("both at once are two problems in one message", () => {
    try {
      loadConfig({
        API_KEY: "change-me-to-a-long-random-string",
        JWT_SECRET: "change-me-to-32-or-more-random-bytes-0000",
      });
      throw new Error("expected a ConfigError");
    } catch (err) {
      expect((err as ConfigError).problems).toHaveLength(2);
    }
  });

  test("the README's commands run as written: its values are no placeholders", async () => {
    const readme = await Bun.file(join(import.meta.dir, "..", "README.md")).text();
    const commands = [...readme.matchAll(/API_KEY=(\S+) JWT_SECRET=(\S+)/g)];
    expect(commands.length).toBeGreaterThanOrEqual(2);
    for (const [, API_KEY, JWT_SECRET] of commands) {
      expect(loadConfig({ API_KEY, JWT_SECRET }, { apiKey: true, jwtSecret: true }).apiKey).toBe(
        API_KEY as string,
      );
    }
  });
});

describe("DATABASE_TIMEOUT_MS", () => {
  test("is read, with bounds", () => {
    expect(loadConfig({ DATABASE_TIMEOUT_MS: "1000" }).databaseTimeoutMs).toBe(1000);
    expect(() => loadConfig({ DATABASE_TIMEOUT_MS: "50" })).toThrow(
      "DATABASE_TIMEOUT_MS must be an integer from 100 to 600000",
    );
    expect(() => loadConfig({ DATABASE_TIMEOUT_MS: "5s" })).toThrow("DATABASE_TIMEOUT_MS");
  });
});

describe("CORS_ORIGINS", () => {
  test("is off when unset or blank", () => {
    expect(loadConfig({}).corsOrigins).toEqual([]);
    expect(loadConfig({ CORS_ORIGINS: " , " }).corsOrigins).toEqual([]);
  });

  test("keeps origins as browsers send them", () => {
    expect(
      parseCorsOrigins(
        " https://App.Example.com/ ,http://localhost:5173, https://app.example.com:443,https://b.example",
      ),
    ).toEqual({
      origins: ["https://app.example.com", "http://localhost:5173", "https://b.example"],
      problems: [],
    });
  });

  test("`*` alone is any origin", () => {
    expect(loadConfig({ CORS_ORIGINS: "*" }).corsOrigins).toEqual(["*"]);
    expect(() => loadConfig({ CORS_ORIGINS: "*, https://a.example" })).toThrow(
      "list no others with it",
    );
  });

  test.each([
    "app.example.com",
    "https://app.example.com/path",
    "https://app.example.com?x",
    "https://user:pw@app.example.com",
    "ftp://app.example.com",
    "null",
  ])("refuses %s", (entry) => {
    expect(() => loadConfig({ CORS_ORIGINS: entry })).toThrow("is not an origin");
  });
});
