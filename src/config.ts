/** Environment configuration, parsed and validated once per process. */
import { isIP } from "node:net";
import { parseTrustedProxies, TRUSTED_PROXIES_FORMAT } from "./auth/client-address.ts";
import { defaultHashQueueOptions } from "./auth/hash-queue.ts";
import { DEFAULT_AUTH_LIMITS } from "./auth/rate-limit.ts";
import { DEFAULT_DATABASE_TIMEOUT_MS } from "./db/client.ts";
import { ConfigError } from "./errors.ts";
import { parseKafkaBrokers } from "./events/kafka.ts";
import { LOG_LEVELS, type LogLevel } from "./logger.ts";
import { type MetricsConfig, parseMetricsConfig } from "./observability/metrics.config.ts";
import { tracingProblems } from "./observability/tracing-config.ts";
import { parseS3Config } from "./storage/s3.config.ts";
import type { S3StorageConfig } from "./storage/s3-photo-storage.ts";

export interface Config {
  apiKey: string | undefined;
  databaseUrl: string | undefined;
  databasePoolSize: number;
  /** DATABASE_TIMEOUT_MS: longest wait for a PostgreSQL connection or statement (db/client.ts). */
  databaseTimeoutMs: number;
  /** EXPORT_STALL_TIMEOUT_MS: how long `export-pets` waits for its next pets (pets.export.ts). */
  exportStallTimeoutMs: number;
  dataDir: string;
  host: string;
  port: number;
  grpcPort: number;
  /** PUBLIC_URL, or `http://localhost:PORT` when it is unset (see `publicUrlFor`). */
  publicUrl: string;
  /** Whether PUBLIC_URL was set; unset, links follow the port the server really binds. */
  publicUrlGiven: boolean;
  maxPhotoBytes: number;
  /** S3_BUCKET and the rest (storage/s3.config.ts): photos in a bucket; unset, in DATA_DIR/photos. */
  s3: S3StorageConfig | undefined;
  logLevel: LogLevel;
  jwtSecret: string | undefined;
  jwtTtlSeconds: number;
  redisUrl: string | undefined;
  redisTimeoutMs: number;
  /** What every key petbooks writes to Redis starts with: `<prefix>cache:`, `<prefix>ratelimit:`. */
  redisKeyPrefix: string;
  cacheTtlSeconds: number;
  kafkaBrokers: string[];
  kafkaTopic: string;
  kafkaGroupId: string;
  outboxRetentionHours: number;
  outboxStallSeconds: number;
  /** CORS_ORIGINS: browser origins allowed to call the API; `["*"]` is any; empty is off. */
  corsOrigins: string[];
  // Abuse protection of the password endpoints (README: Abuse protection).
  /** TRUSTED_PROXIES: peers whose X-Forwarded-For names the client (auth/client-address.ts). */
  trustedProxies: string[];
  authUsernameFailures: number;
  authUsernameWindowSeconds: number;
  authAddressAttempts: number;
  authAddressWindowSeconds: number;
  passwordHashConcurrency: number;
  passwordHashQueue: number;
  passwordHashWaitMs: number;
  /** GRPC_AUTH: BookService needs a bearer token (`bearer`) or serves anyone (`none`). */
  grpcAuth: "bearer" | "none";
  /** METRICS, METRICS_TOKEN, METRICS_PORT (observability/metrics.config.ts). */
  metrics: MetricsConfig;
}

export interface ConfigRequirements {
  /** `serve` cannot start without an API key; one-shot commands do not need it. */
  apiKey?: boolean;
  /** Issuing and checking access tokens needs the signing secret. */
  jwtSecret?: boolean;
  /** `grpc` checks access tokens too, unless GRPC_AUTH=none. */
  grpc?: boolean;
}

export const MIN_API_KEY_LENGTH = 16;
/** HS256 wants a key at least as long as the hash: 256 bits. */
export const MIN_JWT_SECRET_BYTES = 32;
export const DEFAULT_MAX_PHOTO_BYTES = 10 * 1024 * 1024;

/**
 * The mark of a value nobody set: `.env.example` ships `change-me-…` placeholders, and a
 * copied file that still holds one would run with a secret anyone can read.
 */
const PLACEHOLDER = /change[-_ ]?me/i;

type Env = Record<string, string | undefined>;

/**
 * Whether postgres.js can read the URL: it splits off the hosts, then decodes the user name and
 * password, and throws a bare "URI malformed" at the first connect for a stray `%` or `#`.
 */
function parsesAsDatabaseUrl(url: string): boolean {
  try {
    const hosts = decodeURIComponent(url.slice(url.indexOf("://") + 3).split(/[?/]/)[0] ?? "");
    const host = hosts.slice(hosts.indexOf("@") + 1);
    const parsed = new URL(url.replace(host, host.split(",")[0] ?? ""));
    decodeURIComponent(parsed.username);
    decodeURIComponent(parsed.password);
    return true;
  } catch {
    return false;
  }
}

/** What is wrong with a REDIS_URL, never quoting it whole: it may hold the password. */
function redisUrlProblem(url: string): string | undefined {
  if (!/^rediss?:\/\//.test(url)) return "REDIS_URL must be a redis:// or rediss:// URL";
  if (!URL.canParse(url)) {
    return "REDIS_URL is not a valid URL (a port from 1 to 65535; percent-encode special characters in the user name and password)";
  }
  const { pathname } = new URL(url);
  return /^\/?(\d+)?$/.test(pathname)
    ? undefined
    : `REDIS_URL's path must be a database number, as in redis://cache:6379/0 (got "${pathname}")`;
}

/** RFC 1123 host name labels, dot-separated. */
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** An IP address, or a host name that is not digits and dots (those are an IPv4 address or nothing). */
function isListenableHost(host: string): boolean {
  return isIP(host) !== 0 || (HOST_NAME.test(host) && !/^[\d.]+$/.test(host));
}

export function loadConfig(env: Env = process.env, needs: ConfigRequirements = {}): Config {
  const problems: string[] = [];
  const value = (name: string) => {
    const raw = env[name]?.trim();
    return raw === "" ? undefined : raw;
  };
  const integer = (name: string, fallback: number, min: number, max: number) => {
    const raw = value(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return n;
  };

  const apiKey = value("API_KEY");
  if (needs.apiKey && apiKey === undefined) {
    problems.push("API_KEY is required (the key clients send in the X-API-KEY header)");
  } else if (apiKey !== undefined && PLACEHOLDER.test(apiKey)) {
    problems.push(placeholderProblem("API_KEY"));
  } else if (apiKey !== undefined && apiKey.length < MIN_API_KEY_LENGTH) {
    problems.push(`API_KEY must be at least ${MIN_API_KEY_LENGTH} characters long`);
  }

  const databaseUrl = value("DATABASE_URL");
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push("DATABASE_URL must be a postgres:// or postgresql:// URL");
  } else if (databaseUrl !== undefined && !parsesAsDatabaseUrl(databaseUrl)) {
    // Never the URL itself: it usually holds the password.
    problems.push(
      "DATABASE_URL is not a valid URL (percent-encode special characters in the user name and password)",
    );
  }

  const grpcAuth = (value("GRPC_AUTH") ?? "bearer").toLowerCase();
  if (grpcAuth !== "bearer" && grpcAuth !== "none") {
    problems.push(`GRPC_AUTH must be bearer or none (got "${grpcAuth}")`);
  }

  const jwtSecret = value("JWT_SECRET");
  if (needs.jwtSecret && jwtSecret === undefined) {
    problems.push("JWT_SECRET is required (the key that signs access tokens)");
  } else if (needs.grpc && grpcAuth === "bearer" && jwtSecret === undefined) {
    problems.push(
      "JWT_SECRET is required by grpc to check the bearer tokens BookService calls carry (the same JWT_SECRET as serve); on a trusted private network, GRPC_AUTH=none serves BookService without them",
    );
  } else if (jwtSecret !== undefined && PLACEHOLDER.test(jwtSecret)) {
    problems.push(placeholderProblem("JWT_SECRET"));
  } else if (jwtSecret !== undefined && Buffer.byteLength(jwtSecret) < MIN_JWT_SECRET_BYTES) {
    problems.push(`JWT_SECRET must be at least ${MIN_JWT_SECRET_BYTES} bytes long`);
  }

  const redisUrl = value("REDIS_URL");
  const redisProblem = redisUrl === undefined ? undefined : redisUrlProblem(redisUrl);
  if (redisProblem) problems.push(redisProblem);

  const host = value("HOST") ?? "0.0.0.0";
  if (!isListenableHost(host)) {
    problems.push(`HOST must be an IP address or a host name (got "${host}")`);
  }

  let kafkaBrokers: string[] = [];
  const brokers = value("KAFKA_BROKERS");
  if (brokers !== undefined) {
    try {
      kafkaBrokers = parseKafkaBrokers(brokers);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
    }
  }
  const redisKeyPrefix = value("REDIS_KEY_PREFIX") ?? "petbooks:";
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(redisKeyPrefix)) {
    problems.push(
      "REDIS_KEY_PREFIX must be 1 to 64 letters, digits, '.', '_', ':' or '-' (no glob characters)",
    );
  }
  const kafkaTopic = value("KAFKA_TOPIC") ?? "petbooks.books";
  if (!/^[A-Za-z0-9._-]{1,249}$/.test(kafkaTopic)) {
    problems.push(`KAFKA_TOPIC must be a valid Kafka topic name (got "${kafkaTopic}")`);
  }

  const port = integer("PORT", 3000, 0, 65535);
  const publicUrlGiven = value("PUBLIC_URL") !== undefined;
  const publicUrl = (value("PUBLIC_URL") ?? defaultPublicUrl(port)).replace(/\/+$/, "");
  if (!URL.canParse(publicUrl) || !/^https?:$/.test(new URL(publicUrl).protocol)) {
    problems.push(`PUBLIC_URL must be an http:// or https:// URL (got "${publicUrl}")`);
  }

  const logLevel = (value("LOG_LEVEL") ?? "info").toLowerCase();
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")} (got "${logLevel}")`);
  }

  const trusted = parseTrustedProxies(value("TRUSTED_PROXIES") ?? "");
  if (trusted.invalid.length > 0) {
    problems.push(
      `TRUSTED_PROXIES must be ${TRUSTED_PROXIES_FORMAT} (not: ${trusted.invalid.join(", ")})`,
    );
  }
  const hashing = defaultHashQueueOptions();
  const passwordHashConcurrency = integer(
    "PASSWORD_HASH_CONCURRENCY",
    hashing.concurrency,
    1,
    1024,
  );
  const limits = DEFAULT_AUTH_LIMITS;

  const cors = parseCorsOrigins(value("CORS_ORIGINS") ?? "");
  problems.push(...cors.problems);
  problems.push(...tracingProblems(env));

  const config: Config = {
    apiKey,
    databaseUrl,
    databasePoolSize: integer("DATABASE_POOL_SIZE", 10, 1, 1000),
    databaseTimeoutMs: integer("DATABASE_TIMEOUT_MS", DEFAULT_DATABASE_TIMEOUT_MS, 100, 600_000),
    exportStallTimeoutMs: integer("EXPORT_STALL_TIMEOUT_MS", 60_000, 1000, 24 * 3_600_000),
    dataDir: value("DATA_DIR") ?? "./data",
    host,
    port,
    grpcPort: integer("GRPC_PORT", 50051, 0, 65535),
    publicUrl,
    publicUrlGiven,
    maxPhotoBytes: integer("MAX_PHOTO_BYTES", DEFAULT_MAX_PHOTO_BYTES, 1, 1024 * 1024 * 1024),
    s3: parseS3Config(value, problems),
    logLevel: logLevel as LogLevel,
    jwtSecret,
    jwtTtlSeconds: integer("JWT_TTL", 3600, 60, 30 * 24 * 3600),
    redisUrl,
    redisTimeoutMs: integer("REDIS_TIMEOUT_MS", 50, 1, 60_000),
    redisKeyPrefix,
    cacheTtlSeconds: integer("CACHE_TTL", 60, 0, 7 * 24 * 3600),
    kafkaBrokers,
    kafkaTopic,
    kafkaGroupId: value("KAFKA_GROUP_ID") ?? "petbooks-grpc",
    outboxRetentionHours: integer("OUTBOX_RETENTION_HOURS", 24, 1, 24 * 365),
    outboxStallSeconds: integer("OUTBOX_STALL_SECONDS", 60, 1, 24 * 3600),
    corsOrigins: cors.origins,
    trustedProxies: trusted.proxies,
    authUsernameFailures: integer(
      "AUTH_USERNAME_FAILURES",
      limits.usernameFailures.limit,
      1,
      1_000_000,
    ),
    authUsernameWindowSeconds: integer(
      "AUTH_USERNAME_WINDOW_SECONDS",
      limits.usernameFailures.windowSeconds,
      1,
      7 * 24 * 3600,
    ),
    authAddressAttempts: integer(
      "AUTH_ADDRESS_ATTEMPTS",
      limits.addressAttempts.limit,
      1,
      1_000_000,
    ),
    authAddressWindowSeconds: integer(
      "AUTH_ADDRESS_WINDOW_SECONDS",
      limits.addressAttempts.windowSeconds,
      1,
      7 * 24 * 3600,
    ),
    passwordHashConcurrency,
    passwordHashQueue: integer("PASSWORD_HASH_QUEUE", 16 * passwordHashConcurrency, 0, 1_000_000),
    passwordHashWaitMs: integer("PASSWORD_HASH_WAIT_MS", hashing.maxWaitMs, 1, 600_000),
    grpcAuth: grpcAuth as Config["grpcAuth"],
    metrics: parseMetricsConfig(value, integer, problems),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** Names the variable and how to make a value; never the value itself, which may be a secret. */
const placeholderProblem = (name: string) =>
  `${name} is still a placeholder (it contains "change-me"): set it to a random value of your ` +
  "own, e.g. the output of `openssl rand -hex 32`";

/**
 * CORS_ORIGINS: `*`, or origins (`https://app.example.com`, `http://localhost:5173`) separated by
 * commas. Each is kept as browsers send it in `Origin` (lowercase, no default port, no slash).
 */
export function parseCorsOrigins(raw: string): { origins: string[]; problems: string[] } {
  const entries = raw
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  if (entries.includes("*")) {
    return entries.length === 1
      ? { origins: ["*"], problems: [] }
      : {
          origins: [],
          problems: ["CORS_ORIGINS: `*` allows every origin; list no others with it"],
        };
  }
  const origins: string[] = [];
  const problems: string[] = [];
  for (const entry of entries) {
    const url = URL.canParse(entry) ? new URL(entry) : undefined;
    const bare =
      url &&
      /^https?:$/.test(url.protocol) &&
      url.username === "" &&
      url.password === "" &&
      url.pathname === "/" &&
      url.search === "" &&
      url.hash === "" &&
      !entry.endsWith("?") &&
      !entry.endsWith("#");
    if (!url || !bare) {
      problems.push(
        `CORS_ORIGINS: "${entry}" is not an origin (scheme://host[:port], http or https, no path)`,
      );
    } else if (!origins.includes(url.origin)) {
      origins.push(url.origin);
    }
  }
  return { origins, problems };
}

const defaultPublicUrl = (port: number) => `http://localhost:${port}`;

/**
 * The base of the links the server hands out, once it listens on `boundPort`: PUBLIC_URL when
 * set, otherwise localhost on the bound port, which differs from PORT when PORT is 0.
 */
/** The http:// URL of a listener on `host` and `port` (an IPv6 address in brackets). */
export function listenerUrl(host: string, port: number): string {
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

export function publicUrlFor(
  config: Pick<Config, "publicUrl" | "publicUrlGiven">,
  boundPort: number,
): string {
  return config.publicUrlGiven ? config.publicUrl : defaultPublicUrl(boundPort);
}
