/**
 * `petbooks serve` as src/cli/commands.ts builds it, with one difference: book writes skip the
 * outbox row. The `POST /books` benchmark measures the real server against this one, so the
 * ratio is the cost of the transactional outbox (and the relay work it causes) alone.
 *
 * Same environment as `serve` (DATABASE_URL, REDIS_URL, CACHE_TTL, API_KEY, JWT_SECRET, PORT,
 * HOST, DATABASE_POOL_SIZE, LOG_LEVEL). The relay still runs and is still nudged after every
 * write, exactly as in `serve`; it simply never finds anything to publish.
 */
import { createBooksService } from "../src/books/books.service.ts";
import { loadConfig } from "../src/config.ts";
import { openServeDeps } from "../src/deps.ts";
import { createApp, serverBodyLimit } from "../src/http/app.ts";
import { drain } from "../src/http/drain.ts";
import { InFlight } from "../src/http/in-flight.ts";
import { createLogger } from "../src/logger.ts";

const config = loadConfig(process.env, { apiKey: true, jwtSecret: true });
const logger = createLogger(config.logLevel);
const deps = await openServeDeps(config, logger);
const inFlight = new InFlight();
const books = createBooksService({
  db: deps.database.db,
  cache: deps.cache,
  onEventCommitted: () => deps.relay.nudge(),
  recordEvents: false,
});
const app = createApp({
  apiKey: config.apiKey as string,
  maxPhotoBytes: config.maxPhotoBytes,
  logger,
  inFlight,
  ...deps,
  books,
}).listen({
  hostname: config.host,
  port: config.port,
  maxRequestBodySize: serverBodyLimit(config.maxPhotoBytes),
});
deps.relay.start();
logger.info("listening without the outbox", { port: app.server?.port, cache: deps.cache.kind });

const signal = await new Promise<string>((resolve) => {
  for (const name of ["SIGTERM", "SIGINT"] as const) process.once(name, () => resolve(name));
});
logger.info("shutting down", { signal });
if (app.server) await drain(app.server, inFlight, 10_000, logger);
await deps.close();
process.exit(0);
