/**
 * The one door from bench/ into petbooks' own code (src/, generated protobuf aside): when the
 * wiring in src/ changes, only this file has to follow.
 *
 * The ceilings import this file, and their peak RSS is reported: what they need (repositories,
 * tokens, the API key check) is imported statically, as they always did; everything else is
 * loaded on first use, so that a ceiling never loads the app, the PGlite or the S3 server.
 */
import type { BookEventJson } from "../../src/events/events.ts";
import type { LogSink } from "../../src/logger.ts";

export { apiKeyChecker } from "../../src/auth/api-key.ts";
export { createTokenIssuer } from "../../src/auth/tokens.ts";
export { createUsersRepository } from "../../src/auth/users.repository.ts";
export { createBooksRepository } from "../../src/books/books.repository.ts";
export { createPageTokens, pageTokenKey } from "../../src/books/page-tokens.ts";
export type { Db } from "../../src/db/client.ts";
export { renderSql } from "../../src/db/prepared.ts";
export type { BookEventJson } from "../../src/events/events.ts";
export { SECURITY_HEADERS } from "../../src/http/security-headers.ts";
export {
  createPetsRepository,
  exportJsonQuery,
  listPageQuery,
} from "../../src/pets/pets.repository.ts";
export { PHOTO_ROUTE_PREFIX } from "../../src/storage/photo-storage.ts";

type DatabaseOptions = import("../../src/db/client.ts").DatabaseOptions;
type Db = import("../../src/db/client.ts").Db;

/** petbooks' database client (PostgreSQL by URL, or PGlite in `dataDir`), logging nothing. */
export async function openDatabase(options: DatabaseOptions) {
  const [{ openDatabase: open }, { silentLogger }] = await Promise.all([
    import("../../src/db/client.ts"),
    import("../../src/logger.ts"),
  ]);
  return open(options, silentLogger);
}

/**
 * Statements run on petbooks' embedded database in `dataDir` as petbooks runs them there
 * (db/text-query.ts: each without parameters prepared once, then EXECUTE), rows as objects.
 */
export async function embeddedStatements(dataDir: string) {
  const { textQuery } = await import("../../src/db/text-query.ts");
  const database = await openDatabase({ dataDir });
  const run = textQuery(database.db);
  return {
    run: (text: string, params: unknown[] = []) => run<Record<string, unknown>>(text, params),
    close: () => database.close(),
  };
}

export async function migrate(db: Db) {
  const [{ migrate: run }, { silentLogger }] = await Promise.all([
    import("../../src/db/migrate.ts"),
    import("../../src/logger.ts"),
  ]);
  await run(db, silentLogger);
}

/** The Kafka consumer's handler, logging through the real JSON logger into `sink`. */
export async function createEventConsumer(db: Db, sink: LogSink) {
  const [{ createEventConsumer: create }, { createLogger }] = await Promise.all([
    import("../../src/events/consumer.ts"),
    import("../../src/logger.ts"),
  ]);
  return create(db, createLogger("info", sink));
}

/** A book event as petbooks publishes it: binary protobuf with CloudEvents headers. */
export async function kafkaRecordEncoder() {
  const [{ toKafkaMessage }, { fromEventJson }] = await Promise.all([
    import("../../src/events/cloudevents.ts"),
    import("../../src/events/events.ts"),
  ]);
  return (json: BookEventJson) => {
    const decoded = fromEventJson(json);
    if (typeof decoded === "string") throw new Error(decoded);
    const { value, headers } = toKafkaMessage(decoded);
    return { value: value as Buffer, headers: headers as Record<string, string> };
  };
}

/** The outbox relay of `serve`, publishing to an in-process bus that counts what it gets. */
export async function relayToInProcessBus(db: Db, batchSize: number) {
  const [{ createInProcessBus }, { createOutboxRelay }, { silentLogger }] = await Promise.all([
    import("../../src/events/bus.ts"),
    import("../../src/events/relay.ts"),
    import("../../src/logger.ts"),
  ]);
  const bus = createInProcessBus(silentLogger);
  let delivered = 0;
  bus.subscribe(() => {
    delivered += 1;
  });
  const relay = createOutboxRelay({ db, transport: bus, logger: silentLogger, batchSize });
  return { drain: () => relay.drain(), delivered: () => delivered };
}

/** The bearer check of `serve` (token and user), as its guard calls it. */
export async function bearerAuthenticator(db: Db, secret: string, ttlSeconds: number) {
  const [{ createAuthService }, { createTokenIssuer }, { createUsersRepository }] =
    await Promise.all([
      import("../../src/auth/auth.service.ts"),
      import("../../src/auth/tokens.ts"),
      import("../../src/auth/users.repository.ts"),
    ]);
  const tokens = createTokenIssuer(secret, ttlSeconds);
  const auth = createAuthService({ users: createUsersRepository(db), tokens });
  return (authorization: string) => auth.authenticate(authorization);
}

/**
 * `petbooks serve` as its CLI command builds it from the environment, with one difference: book
 * writes skip the outbox row (the relay still runs and is still nudged after every write).
 */
export async function serveWithoutOutbox(env: Record<string, string | undefined>) {
  const [{ openBooksData }, { startHttp }, { loadConfig }, { openServeDeps }, { createLogger }] =
    await Promise.all([
      import("../../src/books/books.module.ts"),
      import("../../src/cli/commands.ts"),
      import("../../src/config.ts"),
      import("../../src/deps.ts"),
      import("../../src/logger.ts"),
    ]);
  const config = loadConfig(env, { apiKey: true, jwtSecret: true });
  const logger = createLogger(config.logLevel);
  // The real repositories, but a book's insert carries no event and the outbox writer drops them.
  const deps = await openServeDeps(config, logger, {}, () => ({
    openBooksData: (db) => {
      const data = openBooksData(db);
      return {
        books: { ...data.books, insert: (book) => data.books.insert(book) },
        outbox: { append: async () => {} },
      };
    },
  }));
  const http = startHttp(config, deps, logger);
  return {
    logger,
    async stop() {
      await http.stop();
      await deps.close();
    },
  };
}

/** Test fixtures: PNG chunks, an EXIF block with GPS, an in-process S3 server. */
export async function photoFixtures() {
  const [{ pngChunk }, { gpsExifTiff }, { startTestS3Server }] = await Promise.all([
    import("../../src/storage/png.ts"),
    import("../../src/testing/photo-fixtures.ts"),
    import("../../src/testing/s3.ts"),
  ]);
  return { pngChunk, gpsExifTiff, startTestS3Server };
}
