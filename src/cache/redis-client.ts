/** A Redis connection as every petbooks feature wants it: fail fast while down, reconnect after. */
import { createClient } from "redis";
import type { Logger } from "../logger.ts";
import { redactUrl } from "../redact.ts";
import { retry } from "../retry.ts";

export type RedisClient = ReturnType<typeof newClient>;

export interface RedisConnectOptions {
  url: string;
  /** What the connection is for, in the startup log lines. */
  purpose: string;
  /** Attempts at startup before giving up. Default 5. */
  connectAttempts?: number;
  logger: Logger;
  /** Connection errors, from the first attempt on (node-redis throws them when unheard). */
  onError: (err: unknown) => void;
}

/**
 * Connects, retrying at startup; throws "cannot reach Redis at …" (password redacted) when it
 * stays unreachable.
 */
function newClient(url: string, connectedOnce: () => boolean) {
  return createClient({
    url,
    // Fail fast while disconnected instead of queueing commands behind a dead connection.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: 2000,
      // Until the first connection, give up at once (the startup retry decides); after it,
      // reconnect forever in the background while callers fall back.
      reconnectStrategy: (retries, cause) =>
        connectedOnce() ? Math.min(100 * 2 ** retries, 2000) : cause,
    },
  });
}

export async function connectRedis(options: RedisConnectOptions): Promise<RedisClient> {
  let connectedOnce = false;
  const client = newClient(options.url, () => connectedOnce);
  client.on("error", options.onError);
  await retry(
    async () => {
      if (!client.isOpen) await client.connect();
      await client.ping();
      connectedOnce = true;
    },
    {
      name: `connect to Redis (${options.purpose})`,
      times: options.connectAttempts ?? 5,
      delayMs: 200,
      exponential: true,
      logger: options.logger,
    },
  ).catch(async (err) => {
    await client.destroy();
    throw new Error(`cannot reach Redis at ${redactUrl(options.url)}: ${(err as Error).message}`);
  });
  return client;
}
