/**
 * The composition root: config → infrastructure (database, cache, events, storage) → feature
 * modules. Every subcommand, the test app and the benchmarks get their wiring from here.
 */
import { join } from "node:path";
import { createAuthModule, createAuthServiceFor } from "./auth/auth.module.ts";
import type { AuthService } from "./auth/auth.service.ts";
import type { HashQueue } from "./auth/hash-queue.ts";
import { openPasswordProtection } from "./auth/protection.ts";
import type { AuthLimits } from "./auth/rate-limit.ts";
import {
  type BooksModuleDeps,
  createBooksModule,
  createBooksRpc,
  createBooksServiceFor,
} from "./books/books.module.ts";
import { type Cache, createMemoryCache, createNoCache } from "./cache/cache.ts";
import { createRedisCache } from "./cache/redis-cache.ts";
import type { Config } from "./config.ts";
import { type Database, openDatabase } from "./db/client.ts";
import { withEmbeddedMaintenance } from "./db/embedded-maintenance.ts";
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
import { createPetsModule, createPetsServiceFor } from "./pets/pets.module.ts";
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

/** Photo files whose removal failed after a delete committed wait in a table for `serve`'s sweep. */
function deletionSweeper(database: Database, storage: PhotoStorage, logger: Logger) {
  return createObjectDeletionSweeper({
    repository: createObjectDeletionsRepository(database.db),
    storage,
    logger: logger.child({ module: "storage" }),
  });
}

/** First away with what crashed uploads left (a log says how many), then the sweep runs. */
async function prepareServedStorage(
  storage: PhotoStorage,
  config: PetsConfig,
  logger: Logger,
): Promise<void> {
  await storage.ready();
  logger.info("photo storage", { storage: storage.kind, bucket: config.s3?.bucket });
  try {
    const removed = await storage.sweepPartialFiles();
    if (removed > 0)
      logger.info("removed partial photo files left by interrupted uploads", { removed });
    const spooled = await sweepStaleUploads();
    if (spooled > 0) logger.info("removed temporary upload files left by a crash", { spooled });
  } catch (err) {
    logger.warn("could not sweep partial photo files", { err });
  }
}

/** What the served features run on, opened by `openServeDeps` (or a test). */
export interface FeatureInfrastructure {
  database: Database;
  cache: Cache;
  transport: EventTransport;
  /** The transport when it is the in-process bus. */
  bus?: InProcessBus | undefined;
  storage: PhotoStorage;
  /** The process' metrics (observability/metrics.ts); none: METRICS=off, or a one-shot command. */
  metrics?: Metrics | undefined;
  /** Tracing (observability/tracing.ts): events carry their writer's trace; none: off. */
  tracing?: Tracing | undefined;
}

export interface FeatureSettings {
  apiKey: string;
  jwtSecret: string;
  jwtTtlSeconds: number;
  maxPhotoBytes: number;
  trustedProxies?: string[] | undefined;
  outboxRetentionHours?: number | undefined;
  outboxStallSeconds?: number | undefined;
  /** The password endpoints' limits and hashing queue (auth/protection.ts); defaults if unset. */
  authLimits?: AuthLimits | undefined;
  hashQueue?: HashQueue | undefined;
  /** An AuthService built elsewhere (tests: other hashers and clocks). */
  authService?: AuthService | undefined;
  /** WatchBooks on the gRPC side of `dev` (book-watch.ts). */
  watch?: BooksModuleDeps["watch"];
  /** Swaps the books repositories (the benchmark without the outbox). */
  openBooksData?: BooksModuleDeps["openData"];
}

/**
 * The relay's poll on the embedded database. Only this process can write to it (data-dir-lock.ts),
 * and each of its writes wakes the relay at once, so the poll is a safety net only; at the
 * default 500 ms, its statements on PGlite were most of an idle `serve`'s CPU (the compiled
 * binary over 60 s: 3.3% of a core, 1.1% with this).
 */
const EMBEDDED_RELAY_IDLE_MS = 30_000;

/**
 * The features of `serve` and `dev` (pets, auth, books, in the order their routes are
 * registered), with the outbox relay that publishes the books' events and the sweep of photo
 * files whose removal failed. Nothing is started here.
 */
export function buildFeatures(
  infra: FeatureInfrastructure,
  settings: FeatureSettings,
  logger: Logger,
) {
  const { database, metrics, tracing } = infra;
  const relay = createOutboxRelay({
    db: database.db,
    transport: infra.transport,
    logger: logger.child({ module: "relay" }),
    idleMs: database.kind === "embedded" ? EMBEDDED_RELAY_IDLE_MS : undefined,
    retentionHours: settings.outboxRetentionHours,
    stallSeconds: settings.outboxStallSeconds,
    metrics: relayMetrics(metrics),
    onClaimed: tracing && rememberEventTraces,
  });
  watchOutbox(metrics, relay, database.db);
  const sweeper = deletionSweeper(database, infra.storage, logger);
  const pets = createPetsModule({
    db: database.db,
    storage: infra.storage,
    apiKey: settings.apiKey,
    maxPhotoBytes: settings.maxPhotoBytes,
    logger,
    deferredRemovals: sweeper,
  });
  const auth = createAuthModule({
    db: database.db,
    jwtSecret: settings.jwtSecret,
    jwtTtlSeconds: settings.jwtTtlSeconds,
    limits: settings.authLimits,
    hashQueue: settings.hashQueue,
    trustedProxies: settings.trustedProxies,
    service: settings.authService,
  });
  const books = createBooksModule({
    db: database.db,
    cache: infra.cache,
    auth: auth.service,
    onEventCommitted: () => relay.nudge(),
    openData: settings.openBooksData,
    pageTokenSecret: settings.jwtSecret,
    watch: settings.watch,
  });
  return { relay, sweeper, pets, auth, books, modules: [pets, auth, books] as const };
}

export type Features = ReturnType<typeof buildFeatures>;

/** The services alone, for the commands that serve nothing (`seed`, `export-pets`). */
export function buildServices(
  database: Database,
  cache: Cache,
  config: PetsConfig & Pick<Config, "jwtSecret" | "jwtTtlSeconds">,
  logger: Logger,
) {
  const storage = openPhotoStorage(config, logger);
  const pets = createPetsServiceFor({
    db: database.db,
    storage,
    maxPhotoBytes: config.maxPhotoBytes,
    logger,
    deferredRemovals: deletionSweeper(database, storage, logger),
  });
  // No token is issued or checked here; the issuer only needs some key.
  const jwtSecret = config.jwtSecret ?? crypto.randomUUID().repeat(2);
  return {
    pets,
    // Its writes record their events in the outbox, which `serve`'s relay publishes.
    books: createBooksServiceFor({ db: database.db, cache }),
    auth: createAuthServiceFor({ db: database.db, jwtSecret, jwtTtlSeconds: config.jwtTtlSeconds }),
  };
}

/**
 * The database of a command. `maintain`: a command that runs on (serve, dev, grpc), whose embedded
 * database is vacuumed and analyzed as it changes (db/embedded-maintenance.ts) until it is closed.
 */
export async function openDatabaseFor(
  config: Config,
  logger: Logger,
  options: { migrate: boolean; maintain?: boolean; tracing?: Tracing | undefined },
): Promise<Database> {
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
    if (!options.maintain) return database;
    return withEmbeddedMaintenance(database, { logger: logger.child({ module: "db" }) });
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
    prefix: `${config.redisKeyPrefix}cache:`,
    ttlSeconds: config.cacheTtlSeconds,
    timeoutMs: config.redisTimeoutMs,
    logger: logger.child({ module: "cache" }),
    onFailure: cacheFailureCounter(metrics),
  });
  return traceCache(instrumentCache(redis, metrics), tracing);
}

/**
 * Kafka when KAFKA_BROKERS is set, the in-process bus otherwise; `bus` is the latter, for what
 * consumes in the same process (`dev`).
 */
export function eventTransport(
  config: Config,
  logger: Logger,
  tracing?: Tracing,
): { transport: EventTransport; bus: InProcessBus | undefined } {
  if (config.kafkaBrokers.length === 0) {
    const bus = createInProcessBus(logger.child({ module: "bus" }));
    return { transport: traceTransport(bus, tracing, config.kafkaTopic), bus };
  }
  const kafka = createKafkaTransport({
    brokers: config.kafkaBrokers,
    topic: config.kafkaTopic,
    logger: logger.child({ module: "kafka" }),
    extraHeaders: traceHeaders(tracing),
  });
  return { transport: traceTransport(kafka, tracing, config.kafkaTopic), bus: undefined };
}

/**
 * Everything `serve` (and `dev`) runs on, opened in dependency order and closed in reverse, and
 * its features built on it. `settings` adds to the config what only `dev` knows (WatchBooks).
 */
export async function openServeDeps(
  config: Config,
  logger: Logger,
  telemetry: Telemetry = {},
  settings: (
    infrastructure: FeatureInfrastructure,
  ) => Promise<Partial<FeatureSettings>> | Partial<FeatureSettings> = () => ({}),
) {
  const { metrics, tracing } = telemetry;
  const closers: (() => Promise<unknown>)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse())
      await close().catch((err) => logger.error("close failed", { err }));
  };
  try {
    const database = await openDatabaseFor(config, logger, {
      migrate: true,
      maintain: true,
      tracing,
    });
    closers.push(() => database.close());
    const cache = await openCache(config, logger, telemetry);
    closers.push(() => cache.close());
    const { transport, bus } = eventTransport(config, logger, tracing);
    await transport.start();
    closers.push(() => transport.stop());
    const protection = await openPasswordProtection(config, logger);
    closers.push(() => protection.close());
    const storage = openPhotoStorage(config, logger);
    const infrastructure = { database, cache, transport, bus, storage, metrics, tracing };
    const features = buildFeatures(
      infrastructure,
      {
        apiKey: config.apiKey as string,
        jwtSecret: config.jwtSecret as string,
        jwtTtlSeconds: config.jwtTtlSeconds,
        maxPhotoBytes: config.maxPhotoBytes,
        trustedProxies: config.trustedProxies,
        outboxRetentionHours: config.outboxRetentionHours,
        outboxStallSeconds: config.outboxStallSeconds,
        authLimits: protection.limits,
        hashQueue: protection.hashQueue,
        ...(await settings(infrastructure)),
      },
      logger,
    );
    closers.push(() => features.relay.stop());
    await prepareServedStorage(storage, config, logger);
    features.sweeper.start();
    closers.push(() => features.sweeper.stop());
    return { ...infrastructure, ...features, close: closeAll };
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
    createAuthServiceFor({
      db: database.db,
      jwtSecret: config.jwtSecret,
      jwtTtlSeconds: config.jwtTtlSeconds,
    });
  return { mode: "bearer", authenticate: (authorization) => service.authenticate(authorization) };
}

/**
 * The gRPC services of `grpc` alone: BookService over a books service of its own (reads only:
 * writes are `serve`'s), page tokens signed with JWT_SECRET, WatchBooks on `watch`.
 */
export function grpcServices(
  database: Database,
  cache: Cache,
  config: Pick<Config, "jwtSecret">,
  watch: BooksModuleDeps["watch"],
) {
  const books = createBooksServiceFor({ db: database.db, cache });
  return [createBooksRpc(books, { pageTokenSecret: config.jwtSecret, watch })];
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
