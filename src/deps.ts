/** Composition root: config → database → cache → events → storage → repositories → services. */
import { join } from "node:path";
import { type AuthService, createAuthService } from "./auth/auth.service.ts";
import type { HashQueue } from "./auth/hash-queue.ts";
import { openPasswordProtection } from "./auth/protection.ts";
import type { AuthLimits } from "./auth/rate-limit.ts";
import { createTokenIssuer } from "./auth/tokens.ts";
import { createUsersRepository } from "./auth/users.repository.ts";
import { createBooksService } from "./books/books.service.ts";
import { type Cache, createMemoryCache, createNoCache } from "./cache/cache.ts";
import { createRedisCache } from "./cache/redis-cache.ts";
import type { Config } from "./config.ts";
import { type Database, openDatabase } from "./db/client.ts";
import { migrate } from "./db/migrate.ts";
import { createInProcessBus, type InProcessBus } from "./events/bus.ts";
import { createEventConsumer, forgetConsumedBefore } from "./events/consumer.ts";
import type { EventTransport } from "./events/events.ts";
import { createKafkaTransport } from "./events/kafka.ts";
import { startKafkaConsumer } from "./events/kafka-consumer.ts";
import { createOutboxRelay } from "./events/relay.ts";
import type { GrpcAuth } from "./grpc/auth.ts";
import type { Logger } from "./logger.ts";
import { cacheFailureCounter, instrumentCache } from "./observability/cache-metrics.ts";
import { traceCache } from "./observability/cache-tracing.ts";
import { rememberEventTraces } from "./observability/event-traces.ts";
import type { Metrics } from "./observability/metrics.ts";
import {
  instrumentConsumer,
  kafkaConsumerWatcher,
  relayMetrics,
  watchOutbox,
} from "./observability/pipeline-metrics.ts";
import { traceConsumer, traceHeaders, traceTransport } from "./observability/pipeline-tracing.ts";
import type { Telemetry } from "./observability/telemetry.ts";
import type { Tracing } from "./observability/tracing.ts";
import { createPetsRepository } from "./pets/pets.repository.ts";
import { createPetsService } from "./pets/pets.service.ts";
import { createObjectDeletionSweeper } from "./storage/object-deletion-sweeper.ts";
import { createObjectDeletionsRepository } from "./storage/object-deletions.repository.ts";
import { createLocalPhotoStorage, type PhotoStorage } from "./storage/photo-storage.ts";
import { sweepStaleUploads } from "./storage/photo-upload.ts";
import {
  createS3Client,
  createS3PhotoStorage,
  type S3StorageConfig,
} from "./storage/s3-photo-storage.ts";

export type PetsConfig = Pick<Config, "dataDir" | "publicUrl" | "maxPhotoBytes"> & {
  /** Photos in a bucket (S3_BUCKET); unset, in DATA_DIR/photos. */
  s3?: S3StorageConfig | undefined;
};

/** The bucket when S3_BUCKET is set, otherwise the local folder DATA_DIR/photos. */
export function openPhotoStorage(config: PetsConfig, logger: Logger): PhotoStorage {
  if (config.s3) {
    return createS3PhotoStorage(
      createS3Client(config.s3),
      config.publicUrl,
      logger.child({ module: "storage" }),
    );
  }
  return createLocalPhotoStorage(join(config.dataDir, "photos"), config.publicUrl);
}

export function buildPets(database: Database, config: PetsConfig, logger: Logger) {
  const storage = openPhotoStorage(config, logger);
  // Removals that fail after a delete commits wait in a table for `serve`'s sweep.
  const sweeper = createObjectDeletionSweeper({
    repository: createObjectDeletionsRepository(database.db),
    storage,
    logger: logger.child({ module: "storage" }),
  });
  const pets = createPetsService({
    repository: createPetsRepository(database.db),
    storage,
    maxPhotoBytes: config.maxPhotoBytes,
    logger: logger.child({ module: "pets" }),
    deferredRemovals: sweeper,
  });
  return { storage, pets, sweeper };
}

/** The pets of a `serve` process: first away with what crashed uploads left (a log says how many). */
async function buildServedPets(database: Database, config: PetsConfig, logger: Logger) {
  const built = buildPets(database, config, logger);
  await built.storage.ready();
  logger.info("photo storage", { storage: built.storage.kind, bucket: config.s3?.bucket });
  try {
    const removed = await built.storage.sweepPartialFiles();
    if (removed > 0)
      logger.info("removed partial photo files left by interrupted uploads", { removed });
    const spooled = await sweepStaleUploads();
    if (spooled > 0) logger.info("removed temporary upload files left by a crash", { spooled });
  } catch (err) {
    logger.warn("could not sweep partial photo files", { err });
  }
  built.sweeper.start();
  return built;
}

export interface BooksInfrastructure {
  database: Database;
  cache: Cache;
  transport: EventTransport;
  jwtSecret: string;
  jwtTtlSeconds: number;
  outboxRetentionHours?: number;
  outboxStallSeconds?: number;
  /** The password endpoints' limits and hashing queue (auth/protection.ts); defaults if unset. */
  authLimits?: AuthLimits;
  hashQueue?: HashQueue;
  /** The process' metrics (observability/metrics.ts); none: METRICS=off, or a one-shot command. */
  metrics?: Metrics | undefined;
  /** Tracing (observability/tracing.ts): events carry their writer's trace; none: off. */
  tracing?: Tracing | undefined;
}

export function buildBooks(infra: BooksInfrastructure, logger: Logger) {
  const relay = createOutboxRelay({
    db: infra.database.db,
    transport: infra.transport,
    logger: logger.child({ module: "relay" }),
    retentionHours: infra.outboxRetentionHours,
    stallSeconds: infra.outboxStallSeconds,
    metrics: relayMetrics(infra.metrics),
    onClaimed: infra.tracing && rememberEventTraces,
  });
  watchOutbox(infra.metrics, relay, infra.database.db);
  const auth = createAuthService({
    users: createUsersRepository(infra.database.db),
    tokens: createTokenIssuer(infra.jwtSecret, infra.jwtTtlSeconds),
    limits: infra.authLimits,
    hashQueue: infra.hashQueue,
  });
  const books = createBooksService({
    db: infra.database.db,
    cache: infra.cache,
    onEventCommitted: () => relay.nudge(),
  });
  return { relay, auth, books };
}

export async function openDatabaseFor(
  config: Config,
  logger: Logger,
  options: { migrate: boolean; tracing?: Tracing | undefined },
) {
  const database = await openDatabase(
    {
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: config.databasePoolSize,
      timeoutMs: config.databaseTimeoutMs,
      tracing: options.tracing,
    },
    logger.child({ module: "db" }),
  );
  try {
    if (options.migrate) await migrate(database.db, logger.child({ module: "migrate" }));
    return database;
  } catch (err) {
    await database.close();
    throw err;
  }
}

export async function openCache(
  config: Config,
  logger: Logger,
  { metrics, tracing }: Telemetry = {},
): Promise<Cache> {
  if (config.cacheTtlSeconds === 0) return createNoCache();
  if (!config.redisUrl) {
    return traceCache(instrumentCache(createMemoryCache(config.cacheTtlSeconds), metrics), tracing);
  }
  const redis = await createRedisCache({
    url: config.redisUrl,
    ttlSeconds: config.cacheTtlSeconds,
    timeoutMs: config.redisTimeoutMs,
    logger: logger.child({ module: "cache" }),
    onFailure: cacheFailureCounter(metrics),
  });
  return traceCache(instrumentCache(redis, metrics), tracing);
}

/** Kafka when KAFKA_BROKERS is set, the in-process bus otherwise. */
export function eventTransport(
  config: Config,
  logger: Logger,
  tracing?: Tracing,
): EventTransport | InProcessBus {
  const transport =
    config.kafkaBrokers.length === 0
      ? createInProcessBus(logger.child({ module: "bus" }))
      : createKafkaTransport({
          brokers: config.kafkaBrokers,
          topic: config.kafkaTopic,
          logger: logger.child({ module: "kafka" }),
          extraHeaders: traceHeaders(tracing),
        });
  return traceTransport(transport, tracing, config.kafkaTopic);
}

/** Everything `serve` runs on, opened in dependency order and closed in reverse. */
export async function openServeDeps(config: Config, logger: Logger, telemetry: Telemetry = {}) {
  const { metrics, tracing } = telemetry;
  const closers: (() => Promise<unknown>)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse())
      await close().catch((err) => logger.error("close failed", { err }));
  };
  try {
    const database = await openDatabaseFor(config, logger, { migrate: true, tracing });
    closers.push(() => database.close());
    const cache = await openCache(config, logger, telemetry);
    closers.push(() => cache.close());
    const transport = eventTransport(config, logger, tracing);
    await transport.start();
    closers.push(() => transport.stop());
    const protection = await openPasswordProtection(config, logger);
    closers.push(() => protection.close());
    const books = buildBooks(
      {
        database,
        cache,
        transport,
        jwtSecret: config.jwtSecret as string,
        jwtTtlSeconds: config.jwtTtlSeconds,
        outboxRetentionHours: config.outboxRetentionHours,
        outboxStallSeconds: config.outboxStallSeconds,
        authLimits: protection.limits,
        hashQueue: protection.hashQueue,
        metrics,
        tracing,
      },
      logger,
    );
    closers.push(() => books.relay.stop());
    return {
      database,
      cache,
      transport,
      ...(await buildServedPets(database, config, logger).then((pets) => {
        closers.push(() => pets.sweeper.stop());
        return pets;
      })),
      ...books,
      metrics,
      tracing,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

export type ServeDeps = Awaited<ReturnType<typeof openServeDeps>>;

/**
 * What BookService over gRPC asks of its callers (GRPC_AUTH). With bearer tokens, `auth` is the
 * process' own AuthService when it has one (`dev`), so a user deleted over REST is refused at
 * once; `grpc` alone checks tokens with one of its own, which knows of a deletion within its
 * user cache time (a few seconds), as every other replica does.
 */
export function grpcAuthFor(
  config: Pick<Config, "grpcAuth" | "jwtSecret" | "jwtTtlSeconds">,
  database: Database,
  auth?: AuthService,
): GrpcAuth {
  if (config.grpcAuth === "none") return { mode: "none" };
  if (!config.jwtSecret) throw new Error("GRPC_AUTH=bearer needs JWT_SECRET (see loadConfig)");
  const service =
    auth ??
    createAuthService({
      users: createUsersRepository(database.db),
      tokens: createTokenIssuer(config.jwtSecret, config.jwtTtlSeconds),
    });
  return { mode: "bearer", authenticate: (authorization) => service.authenticate(authorization) };
}

export interface ConsumerOptions {
  database: Database;
  logger: Logger;
  /** One-process mode: consume straight from the relay's in-process bus. */
  bus?: InProcessBus;
  kafka?: { brokers: string[]; topic: string; groupId: string };
  /** kafkajs gave up for good: the process should exit non-zero. */
  onFatal: (err: Error) => void;
  metrics?: Metrics | undefined;
  tracing?: Tracing | undefined;
}

/** Handled event ids are kept this long: far longer than any redelivery takes. */
const CONSUMED_EVENTS_RETENTION_MS = 7 * 24 * 3_600_000;

/** Starts consuming book events from wherever they are published; `stop` ends it. */
export async function startEventConsumer(
  options: ConsumerOptions,
): Promise<{ stop(): Promise<void> }> {
  const logger = options.logger.child({ module: "consumer" });
  const { db } = options.database;
  const handler = traceConsumer(
    instrumentConsumer(createEventConsumer(db, logger), options.metrics),
    options.tracing,
  );
  const pruneHourly = (stop: () => Promise<void>) => {
    const timer = setInterval(() => {
      forgetConsumedBefore(db, new Date(Date.now() - CONSUMED_EVENTS_RETENTION_MS)).catch((err) =>
        logger.warn("could not prune consumed event ids", { err }),
      );
    }, 3_600_000);
    timer.unref();
    return {
      async stop() {
        clearInterval(timer);
        await stop();
      },
    };
  };
  if (options.bus) {
    const unsubscribe = options.bus.subscribe((event) => handler.handleEvent(event));
    logger.info("consuming book events from the in-process bus");
    return pruneHourly(async () => void unsubscribe());
  }
  if (options.kafka && options.kafka.brokers.length > 0) {
    const consumer = await startKafkaConsumer({
      ...options.kafka,
      handler,
      logger,
      onFatal: options.onFatal,
      watch: kafkaConsumerWatcher(options.metrics),
    });
    return pruneHourly(() => consumer.stop());
  }
  logger.info("KAFKA_BROKERS is not set: book events are not consumed by this process");
  return { stop: async () => {} };
}
