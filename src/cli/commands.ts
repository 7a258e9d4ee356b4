/** The subcommands: each parses its flags, builds what it needs, and returns an exit code. */
import { type Cache, createNoCache } from "../cache/cache.ts";
import { type Config, listenerUrl, loadConfig, publicUrlFor } from "../config.ts";
import type { Database } from "../db/client.ts";
import { isMissingTable } from "../db/errors.ts";
import {
  buildServices,
  grpcAuthFor,
  grpcServices,
  openCache,
  openDatabaseFor,
  openServeDeps,
  type ServeDeps,
  startEventConsumer,
} from "../deps.ts";
import type { InProcessBus } from "../events/bus.ts";
import type { LiveEvents } from "../events/live-events.ts";
import { outboxReplay } from "../events/outbox.repository.ts";
import { outboxTailSource } from "../events/outbox-tail.ts";
import { startWatchFeed, type WatchFeed } from "../events/watch-feed.ts";
import type { FeatureModule } from "../feature-module.ts";
import type { GrpcAuth } from "../grpc/auth.ts";
import { startGrpcServer } from "../grpc/server.ts";
import { createApp, SERVER_BODY_LIMIT_BYTES } from "../http/app.ts";
import { drain } from "../http/drain.ts";
import { InFlight } from "../http/in-flight.ts";
import { createLogger, type Logger } from "../logger.ts";
import { type MetricsServer, startMetricsServer } from "../observability/metrics-server.ts";
import { type Telemetry, telemetryFor } from "../observability/telemetry.ts";
import { writePetsExport } from "../pets/pets.export.ts";
import { discardInFlightUploads } from "../storage/photo-upload.ts";
import { booleanFlag, integerFlag, parseArgs } from "./args.ts";
import { checkGrpc, checkHttp } from "./healthcheck.ts";
import { DEMO_USER, progressBar, seed } from "./seed.ts";
import {
  DEV_USAGE,
  EXPORT_PETS_USAGE,
  GRPC_USAGE,
  HEALTHCHECK_USAGE,
  MIGRATE_USAGE,
  SEED_USAGE,
  SERVE_USAGE,
} from "./usage.ts";

export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream & import("node:stream").Writable;
  stderr: NodeJS.WritableStream;
  /** Resolves when the process is asked to stop. */
  shutdownSignal: () => Promise<string>;
}

export const SHUTDOWN_GRACE_MS = 10_000;

/** The HTTP API on HOST:PORT, with the outbox relay running (also the bench's no-outbox server). */
export function startHttp(config: Config, deps: ServeDeps, logger: Logger) {
  const inFlight = new InFlight();
  deps.metrics?.addInFlight(() => inFlight.count);
  const created = createApp({
    modules: deps.modules,
    logger,
    database: deps.database,
    inFlight,
    relay: deps.relay,
    corsOrigins: config.corsOrigins,
    metrics: deps.metrics,
    metricsToken: config.metrics.token,
    tracing: deps.tracing,
  });
  let app: typeof created;
  try {
    app = created.listen({
      hostname: config.host,
      port: config.port,
      // A second server on a port in use must fail, not silently share its traffic.
      reusePort: false,
      maxRequestBodySize: SERVER_BODY_LIMIT_BYTES,
    });
  } catch (err) {
    // Bun names neither (an unknown HOST is "ENOENT: no such file or directory, listen").
    throw new Error(
      `cannot listen on HOST=${config.host} PORT=${config.port}: ${(err as Error).message}`,
    );
  }
  const port = app.server?.port ?? config.port;
  // Before any request is handled (listen returned on this tick): links name the real port.
  const publicUrl = publicUrlFor(config, port);
  deps.storage.setPublicUrl(publicUrl);
  deps.relay.start();
  logger.info("listening", {
    url: listenerUrl(config.host, port),
    database: deps.database.kind,
    cache: deps.cache.kind,
    events: deps.transport.name,
    docs: `${publicUrl}/docs`,
  });
  return {
    async stop() {
      if (app.server) await drain(app.server, inFlight, SHUTDOWN_GRACE_MS, logger);
      // The uploads the grace period cut short never get to remove their temporary files.
      const discarded = await discardInFlightUploads();
      if (discarded > 0) logger.info("unfinished uploads discarded", { files: discarded });
      logger.debug("http server stopped");
    },
  };
}

/** WatchBooks: the live events of this process, the retained outbox rows for resuming. */
function watchOptions(config: Config, database: Database, live: LiveEvents | undefined) {
  return {
    live,
    replay: outboxReplay(database.db),
    retentionMs: config.outboxRetentionHours * 3_600_000,
  };
}

/** The features' gRPC services, health and reflection on HOST:GRPC_PORT. */
async function startGrpc(
  config: Config,
  { database, cache }: { database: Database; cache: Cache },
  services: NonNullable<FeatureModule["rpc"]>[],
  auth: GrpcAuth,
  logger: Logger,
  { metrics, tracing }: Telemetry = {},
) {
  const server = await startGrpcServer({
    host: config.host,
    port: config.grpcPort,
    services,
    ping: database.ping,
    logger,
    // GRPC_AUTH: BookService needs the REST API's bearer tokens, unless it is `none`.
    auth,
    metrics,
    tracing,
  });
  logger.info("listening", {
    url: server.url,
    protocols: ["grpc", "grpc-web", "connect"],
    auth: config.grpcAuth,
    database: database.kind,
    cache: cache.kind,
  });
  return server;
}

export async function serveCommand(argv: string[], io: CliIo): Promise<number> {
  if (parseArgs(argv, { help: "switch" }, SERVE_USAGE).flags.help) return usage(io, SERVE_USAGE);
  const config = loadConfig(io.env, { apiKey: true, jwtSecret: true });
  const logger = createLogger(config.logLevel);
  const telemetry = await telemetryFor(config, io.env, "petbooks-serve", logger);
  const deps = await openServeDeps(config, logger, telemetry);
  const http = startHttp(config, deps, logger);
  const signal = await io.shutdownSignal();
  logger.info("shutting down", { signal });
  await http.stop();
  await deps.close();
  await deps.tracing?.shutdown();
  logger.info("stopped");
  return 0;
}

/** Resolves with the signal that asked us to stop, or the fatal error that forces us to. */
function stopReason(io: CliIo, fatal: Promise<Error>) {
  return Promise.race([
    io.shutdownSignal().then((signal) => ({ signal, err: undefined })),
    fatal.then((err) => ({ signal: undefined, err })),
  ]);
}

export async function grpcCommand(argv: string[], io: CliIo): Promise<number> {
  if (parseArgs(argv, { help: "switch" }, GRPC_USAGE).flags.help) return usage(io, GRPC_USAGE);
  const config = loadConfig(io.env, { grpc: true });
  const logger = createLogger(config.logLevel);
  const telemetry = await telemetryFor(config, io.env, "petbooks-grpc", logger);
  const database = await openDatabaseFor(config, logger, {
    migrate: true,
    maintain: true,
    tracing: telemetry.tracing,
  });
  // Without Redis, `serve` (another process) could not invalidate a cache of ours: read through.
  let cache = createNoCache();
  let onFatal: (err: Error) => void = () => {};
  const fatal = new Promise<Error>((resolve) => {
    onFatal = resolve;
  });
  let exitCode = 0;
  let feed: WatchFeed | undefined;
  const { metrics } = telemetry;
  let metricsServer: MetricsServer | undefined;
  const kafka = {
    brokers: config.kafkaBrokers,
    topic: config.kafkaTopic,
    groupId: config.kafkaGroupId,
  };
  try {
    // First: a METRICS_PORT in use fails the start before anything else listens.
    if (metrics) {
      metricsServer = startMetricsServer(metrics, { ...config.metrics, host: config.host, logger });
    }
    if (config.redisUrl) cache = await openCache(config, logger, telemetry);
    // WatchBooks' own Kafka group (every event, every replica), ready before the first call.
    feed = await startWatchFeed({
      logger,
      source: outboxTailSource(database.db),
      kafka,
      onFatal,
    });
    const server = await startGrpc(
      config,
      { database, cache },
      grpcServices(database, cache, config, watchOptions(config, database, feed.live)),
      grpcAuthFor(config, database),
      logger,
      telemetry,
    );
    const consumer = await startEventConsumer({
      database,
      logger,
      kafka,
      onFatal,
      metrics,
      tracing: telemetry.tracing,
    });
    const reason = await stopReason(io, fatal);
    if (reason.err) {
      logger.error("the Kafka consumer gave up; exiting so a supervisor restarts us", {
        err: reason.err,
      });
      exitCode = 1;
    } else {
      logger.info("shutting down", { signal: reason.signal });
    }
    await consumer.stop().catch((err) => logger.error("consumer stop failed", { err }));
    // Ends every WatchBooks stream with UNAVAILABLE at once, then the other calls get their grace.
    await server.close(SHUTDOWN_GRACE_MS);
    logger.debug("grpc server stopped");
  } finally {
    await feed?.stop().catch((err) => logger.error("WatchBooks feed stop failed", { err }));
    await metricsServer?.stop();
    await cache.close().catch((err) => logger.error("close failed", { err }));
    await database.close();
    await telemetry.tracing?.shutdown();
  }
  logger.info("stopped");
  return exitCode;
}

/**
 * One process for local use: the HTTP API, the gRPC server and the event consumer, wired to the
 * in-process bus, so a book created over REST shows up over gRPC and its event in the log.
 */
export async function devCommand(argv: string[], io: CliIo): Promise<number> {
  if (parseArgs(argv, { help: "switch" }, DEV_USAGE).flags.help) return usage(io, DEV_USAGE);
  // One process: its events go through the in-process bus, whatever KAFKA_BROKERS says.
  const config = { ...loadConfig(io.env, { apiKey: true, jwtSecret: true }), kafkaBrokers: [] };
  const logger = createLogger(config.logLevel);
  const telemetry = await telemetryFor(config, io.env, "petbooks-dev", logger);
  // The in-process bus carries the events to WatchBooks, so the feed starts before the features.
  let feed: WatchFeed | undefined;
  const deps = await openServeDeps(config, logger, telemetry, async ({ bus, database }) => {
    feed = await startWatchFeed({
      logger,
      source: outboxTailSource(database.db),
      bus: inProcess(bus),
      onFatal: () => {},
    });
    return { watch: watchOptions(config, database, feed.live) };
  }).catch(async (err) => {
    await feed?.stop();
    throw err;
  });
  try {
    const http = startHttp(config, deps, logger);
    const grpc = await startGrpc(
      config,
      deps,
      deps.modules.flatMap((module) => (module.rpc ? [module.rpc] : [])),
      // dev's own AuthService: a user deleted over REST is refused over gRPC at once.
      grpcAuthFor(config, deps.database, deps.auth.service),
      logger,
      // One registry: serve's `/metrics` shows the gRPC calls and the consumer too.
      deps,
    );
    const consumer = await startEventConsumer({
      database: deps.database,
      logger,
      bus: inProcess(deps.bus),
      onFatal: () => {},
      metrics: deps.metrics,
      tracing: deps.tracing,
    });
    const signal = await io.shutdownSignal();
    logger.info("shutting down", { signal });
    await Promise.all([http.stop(), grpc.close(SHUTDOWN_GRACE_MS)]);
    await consumer.stop();
  } finally {
    await feed?.stop().catch((err) => logger.error("WatchBooks feed stop failed", { err }));
    await deps.close();
    await deps.tracing?.shutdown();
  }
  logger.info("stopped");
  return 0;
}

function inProcess(bus: InProcessBus | undefined): InProcessBus {
  if (!bus) throw new Error("dev runs on the in-process bus, and it has none");
  return bus;
}

export async function migrateCommand(argv: string[], io: CliIo): Promise<number> {
  if (parseArgs(argv, { help: "switch" }, MIGRATE_USAGE).flags.help)
    return usage(io, MIGRATE_USAGE);
  const config = loadConfig(io.env);
  const logger = createLogger(config.logLevel);
  const database = await openDatabaseFor(config, logger, { migrate: true });
  await database.close();
  logger.info("database is up to date");
  return 0;
}

export async function exportPetsCommand(argv: string[], io: CliIo): Promise<number> {
  const { flags } = parseArgs(argv, { help: "switch", "has-photos": "boolean" }, EXPORT_PETS_USAGE);
  if (flags.help) return usage(io, EXPORT_PETS_USAGE);
  const config = loadConfig(io.env);
  const logger = createLogger(config.logLevel);
  // The embedded database belongs to this process alone while it runs, so bring it up to date;
  // a shared PostgreSQL is migrated by `serve` or `migrate`, never by a read-only export.
  const database = await openDatabaseFor(config, logger, { migrate: !config.databaseUrl });
  const { pets } = buildServices(database, createNoCache(), config, logger);
  const progress = (io.stderr as { isTTY?: boolean }).isTTY
    ? (n: number) => io.stderr.write(`\rexported ${n} pets`)
    : undefined;
  try {
    const total = await writePetsExport(pets, io.stdout, {
      hasPhotos: booleanFlag(flags["has-photos"]),
      onProgress: progress,
      stallMs: config.exportStallTimeoutMs,
    });
    if (progress) io.stderr.write(`\rexported ${total} pets\n`);
  } catch (err) {
    if (!isMissingTable(err)) throw err;
    throw new Error(
      `the database has no petbooks tables: run \`petbooks migrate\` first (${(err as Error).message})`,
    );
  } finally {
    await database.close();
  }
  return 0;
}

export async function seedCommand(argv: string[], io: CliIo): Promise<number> {
  const { flags } = parseArgs(
    argv,
    { help: "switch", pets: "integer", books: "integer" },
    SEED_USAGE,
  );
  if (flags.help) return usage(io, SEED_USAGE);
  const config = loadConfig(io.env);
  const logger = createLogger(config.logLevel);
  const database = await openDatabaseFor(config, logger, { migrate: true });
  // Open the real cache so the API's cached list pages are invalidated by what we add.
  const cache = await openCache(config, logger).catch(async (err) => {
    await database.close();
    throw err;
  });
  try {
    const services = buildServices(database, cache, config, logger);
    const started = performance.now();
    const result = await seed(
      {
        ...services,
        progress: (io.stderr as { isTTY?: boolean }).isTTY
          ? progressBar((text) => io.stderr.write(text))
          : undefined,
      },
      { pets: integerFlag(flags.pets, 200), books: integerFlag(flags.books, 200) },
    );
    logger.info("seeded", {
      pets_added: result.petsAdded,
      photos_added: result.photosAdded,
      books_added: result.booksAdded,
      demo_user: DEMO_USER.username,
      demo_user_created: result.demoUserCreated,
      seconds: Math.round((performance.now() - started) / 100) / 10,
    });
  } finally {
    await cache.close();
    await database.close();
  }
  return 0;
}

export async function healthcheckCommand(argv: string[], io: CliIo): Promise<number> {
  const { flags } = parseArgs(argv, { help: "switch", grpc: "switch" }, HEALTHCHECK_USAGE);
  if (flags.help) return usage(io, HEALTHCHECK_USAGE);
  const config = loadConfig(io.env);
  const problem = flags.grpc ? await checkGrpc(config) : await checkHttp(config);
  if (problem) {
    io.stderr.write(`petbooks: unhealthy: ${problem}\n`);
    return 1;
  }
  return 0;
}

function usage(io: CliIo, text: string): number {
  io.stdout.write(`${text}\n`);
  return 0;
}
