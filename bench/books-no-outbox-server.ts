/**
 * `petbooks serve` as src/cli/commands.ts builds it, with one difference: book writes skip the
 * outbox row. The `POST /books` benchmark measures the real server against this one, so the
 * ratio is the cost of the transactional outbox (and the relay work it causes) alone.
 *
 * Same environment as `serve` (DATABASE_URL, REDIS_URL, CACHE_TTL, API_KEY, JWT_SECRET, PORT,
 * HOST, DATABASE_POOL_SIZE, LOG_LEVEL). The relay still runs and is still nudged after every
 * write, exactly as in `serve`; it simply never finds anything to publish.
 */
import { serveWithoutOutbox } from "./lib/petbooks.ts";

const server = await serveWithoutOutbox(process.env);
server.logger.info("serving without the outbox");
const signal = await new Promise<string>((resolve) => {
  for (const name of ["SIGTERM", "SIGINT"] as const) process.once(name, () => resolve(name));
});
server.logger.info("shutting down", { signal });
await server.stop();
process.exit(0);
