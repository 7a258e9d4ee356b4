/** A Redis connection as every petbooks feature wants it: fail fast while down, reconnect after. */
import { createHash } from "node:crypto";
import { createClient } from "redis";
import type { Logger } from "../logger.ts";
import { redactUrl } from "../redact.ts";
import { isTransient, retryable } from "../retry.ts";
import { withinTimeout } from "../timeout.ts";

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

/** What a connection needs of the client: node-redis's, or a stand-in in tests. */
interface Connectable {
  readonly isOpen: boolean;
  connect(): Promise<unknown>;
  ping(): Promise<unknown>;
  destroy(): void;
}

/**
 * A connection that was made but did not answer its PING: accepted and never answered (a
 * blackholed port, a proxy with no backend), or closed at once. Worth another attempt.
 */
class RedisNoAnswerError extends Error {
  override name = "RedisNoAnswerError";
  readonly retriable = true;
}

/** How long connecting and the startup PING may take: node-redis bounds the TCP connect only. */
export const REDIS_PING_TIMEOUT_MS = 2000;

/** The startup connection: connect and ping, tried again while Redis is out of reach. */
export class RedisConnection {
  constructor(
    private readonly client: Connectable,
    readonly purpose: string,
    readonly logger: Logger,
    readonly attempts = 5,
    readonly sleep: (ms: number) => Promise<void> = Bun.sleep,
    readonly pingTimeoutMs = REDIS_PING_TIMEOUT_MS,
  ) {}

  @retryable((c: RedisConnection) => ({
    name: `connect to Redis (${c.purpose})`,
    times: c.attempts,
    delayMs: 200,
    exponential: true,
    retryOn: isTransient,
    sleep: c.sleep,
  }))
  async open(): Promise<void> {
    let pinging = false;
    // node-redis's connect sends its first commands (CLIENT SETINFO) and waits for their answers,
    // which a silent peer never sends: bounded like the PING.
    const answered = async () => {
      if (!this.client.isOpen) await this.client.connect();
      pinging = true;
      await this.client.ping();
    };
    try {
      await withinTimeout(
        answered(),
        this.pingTimeoutMs,
        (message) => new RedisNoAnswerError(`connect and PING: ${message}`),
      );
    } catch (err) {
      const timedOut = err instanceof RedisNoAnswerError;
      // A refused or rejected connect (a wrong password) is judged as it is, by the retry.
      if (!timedOut && !(pinging && !this.client.isOpen)) throw err;
      // The next attempt starts on a new connection: this one may never answer.
      this.client.destroy();
      if (timedOut) throw err;
      throw new RedisNoAnswerError(`the connection closed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}

export async function connectRedis(options: RedisConnectOptions): Promise<RedisClient> {
  let connectedOnce = false;
  const client = newClient(options.url, () => connectedOnce);
  client.on("error", options.onError);
  const connection = new RedisConnection(
    client,
    options.purpose,
    options.logger,
    options.connectAttempts,
  );
  await connection.open().catch(async (err) => {
    await client.destroy();
    throw new Error(`cannot reach Redis at ${redactUrl(options.url)}: ${(err as Error).message}`);
  });
  connectedOnce = true;
  return client;
}

/** An answer that was meant for another command: the connection lost some. */
export class RedisReplyMismatchError extends Error {
  override name = "RedisReplyMismatchError";
}

/**
 * Runs Lua scripts by their SHA (by their text again once Redis forgot them), each sent a tag as
 * its ARGV[1] that it answers first, as `{ARGV[1], ...}`. node-redis matches answers to commands
 * by their order on the connection: when answers are lost while the connection stays open (a
 * middlebox that drops bytes), every later answer would go to the wrong command, and a read could
 * return another key's value. A wrong tag fails the call instead, and the connection is made
 * again (`onReconnectFailed` hears if that fails; the next call tries again).
 */
export function scriptRunner<Name extends string>(
  client: RedisClient,
  scripts: Record<Name, string>,
  onReconnectFailed: (err: unknown) => void,
) {
  const shas = Object.fromEntries(
    Object.entries<string>(scripts).map(([name, text]) => [
      name,
      createHash("sha1").update(text).digest("hex"),
    ]),
  ) as Record<Name, string>;
  let tags = 0;
  let reconnecting: Promise<void> | undefined;
  const reconnect = () => {
    reconnecting ??= (async () => {
      client.destroy();
      await client.connect();
    })()
      .catch(onReconnectFailed)
      .finally(() => {
        reconnecting = undefined;
      });
  };

  /** The script's answer after its tag. */
  return async <T extends unknown[]>(name: Name, keys: string[], args: string[]): Promise<T> => {
    // Closed for good by a reconnect that failed: node-redis reconnects only an open client.
    if (!client.isOpen && !reconnecting) reconnect();
    const tag = String(++tags);
    const send = (command: string, body: string) =>
      client.sendCommand<unknown>([command, body, String(keys.length), ...keys, tag, ...args]);
    let reply: unknown;
    try {
      reply = await send("EVALSHA", shas[name]);
    } catch (err) {
      if (!String((err as Error).message).startsWith("NOSCRIPT")) throw err;
      // Redis restarted and forgot the scripts.
      reply = await send("EVAL", scripts[name]);
    }
    if (!Array.isArray(reply) || reply[0] !== tag) {
      reconnect();
      throw new RedisReplyMismatchError(`the answer to ${name} was another command's`);
    }
    return reply.slice(1) as T;
  };
}
