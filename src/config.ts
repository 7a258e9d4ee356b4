/** Environment configuration, parsed and validated once per process. */
import { ConfigError } from "./errors.ts";
import { parseKafkaBrokers } from "./events/kafka.ts";
import { LOG_LEVELS, type LogLevel } from "./logger.ts";

export interface Config {
  apiKey: string | undefined;
  databaseUrl: string | undefined;
  databasePoolSize: number;
  dataDir: string;
  host: string;
  port: number;
  grpcPort: number;
  /** PUBLIC_URL, or `http://localhost:PORT` when it is unset (see `publicUrlFor`). */
  publicUrl: string;
  /** Whether PUBLIC_URL was set; unset, links follow the port the server really binds. */
  publicUrlGiven: boolean;
  maxPhotoBytes: number;
  logLevel: LogLevel;
  jwtSecret: string | undefined;
  jwtTtlSeconds: number;
  redisUrl: string | undefined;
  redisTimeoutMs: number;
  cacheTtlSeconds: number;
  kafkaBrokers: string[];
  kafkaTopic: string;
  kafkaGroupId: string;
  outboxRetentionHours: number;
  outboxStallSeconds: number;
}

export interface ConfigRequirements {
  /** `serve` cannot start without an API key; one-shot commands do not need it. */
  apiKey?: boolean;
  /** Issuing and checking access tokens needs the signing secret. */
  jwtSecret?: boolean;
}

export const MIN_API_KEY_LENGTH = 16;
/** HS256 wants a key at least as long as the hash: 256 bits. */
export const MIN_JWT_SECRET_BYTES = 32;
export const DEFAULT_MAX_PHOTO_BYTES = 10 * 1024 * 1024;

type Env = Record<string, string | undefined>;

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
  } else if (apiKey !== undefined && apiKey.length < MIN_API_KEY_LENGTH) {
    problems.push(`API_KEY must be at least ${MIN_API_KEY_LENGTH} characters long`);
  }

  const databaseUrl = value("DATABASE_URL");
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push("DATABASE_URL must be a postgres:// or postgresql:// URL");
  }

  const jwtSecret = value("JWT_SECRET");
  if (needs.jwtSecret && jwtSecret === undefined) {
    problems.push("JWT_SECRET is required (the key that signs access tokens)");
  } else if (jwtSecret !== undefined && Buffer.byteLength(jwtSecret) < MIN_JWT_SECRET_BYTES) {
    problems.push(`JWT_SECRET must be at least ${MIN_JWT_SECRET_BYTES} bytes long`);
  }

  const redisUrl = value("REDIS_URL");
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    problems.push("REDIS_URL must be a redis:// or rediss:// URL");
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

  const config: Config = {
    apiKey,
    databaseUrl,
    databasePoolSize: integer("DATABASE_POOL_SIZE", 10, 1, 1000),
    dataDir: value("DATA_DIR") ?? "./data",
    host: value("HOST") ?? "0.0.0.0",
    port,
    grpcPort: integer("GRPC_PORT", 50051, 0, 65535),
    publicUrl,
    publicUrlGiven,
    maxPhotoBytes: integer("MAX_PHOTO_BYTES", DEFAULT_MAX_PHOTO_BYTES, 1, 1024 * 1024 * 1024),
    logLevel: logLevel as LogLevel,
    jwtSecret,
    jwtTtlSeconds: integer("JWT_TTL", 3600, 60, 30 * 24 * 3600),
    redisUrl,
    redisTimeoutMs: integer("REDIS_TIMEOUT_MS", 50, 1, 60_000),
    cacheTtlSeconds: integer("CACHE_TTL", 60, 0, 7 * 24 * 3600),
    kafkaBrokers,
    kafkaTopic,
    kafkaGroupId: value("KAFKA_GROUP_ID") ?? "petbooks-grpc",
    outboxRetentionHours: integer("OUTBOX_RETENTION_HOURS", 24, 1, 24 * 365),
    outboxStallSeconds: integer("OUTBOX_STALL_SECONDS", 60, 1, 24 * 3600),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

const defaultPublicUrl = (port: number) => `http://localhost:${port}`;

/**
 * The base of the links the server hands out, once it listens on `boundPort`: PUBLIC_URL when
 * set, otherwise localhost on the bound port, which differs from PORT when PORT is 0.
 */
export function publicUrlFor(
  config: Pick<Config, "publicUrl" | "publicUrlGiven">,
  boundPort: number,
): string {
  return config.publicUrlGiven ? config.publicUrl : defaultPublicUrl(boundPort);
}
