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
import { startHttp } from "../src/cli/commands.ts";
import { loadConfig } from "../src/config.ts";
import { openServeDeps } from "../src/deps.ts";
import { createLogger } from "../src/logger.ts";

const config = loadConfig(process.env, { apiKey: true, jwtSecret: true });
const logger = createLogger(config.logLevel);
const deps = await openServeDeps(config, logger);
const books = createBooksService({
  db: deps.database.db,
  cache: deps.cache,
  onEventCommitted: () => deps.relay.nudge(),
  recordEvents: false,
});
const http = startHttp(config, { ...deps, books }, logger);
logger.info("serving without the outbox");

const signal = await new Promise<string>((resolve) => {
  for (const name of ["SIGTERM", "SIGINT"] as const) process.once(name, () => resolve(name));
});
logger.info("shutting down", { signal });
await http.stop();
await deps.close();
process.exit(0);
