/**
 * The standard gRPC health service (grpc.health.v1.Health): SERVING while the database answers,
 * NOT_SERVING when it does not, or once the server is shutting down.
 */
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../gen/grpc/health/v1/health_pb.ts";
import { throwIfDeadlineExceeded } from "./observed-stream.ts";

export { Status as ServingStatus };

export interface HealthOptions {
  /** Resolves while the database answers. */
  ping: () => Promise<void>;
  /** The services whose health is reported, besides "" (the whole server). */
  services: string[];
  /** How often a Watch checks again. */
  watchIntervalMs?: number;
  /** A ping slower than this counts as a failure, so a stuck database cannot stall a probe. */
  pingTimeoutMs?: number;
  /** Aborted when the server begins to shut down: everything is NOT_SERVING from then on. */
  shutdown?: AbortSignal;
}

const DEFAULT_WATCH_INTERVAL_MS = 5_000;
const DEFAULT_PING_TIMEOUT_MS = 2_000;

export function healthService({
  ping,
  services,
  watchIntervalMs = DEFAULT_WATCH_INTERVAL_MS,
  pingTimeoutMs = DEFAULT_PING_TIMEOUT_MS,
  shutdown = new AbortController().signal,
}: HealthOptions): ServiceImpl<typeof Health> {
  const known = new Set(["", ...services]);

  const status = async (): Promise<Status> => {
    if (shutdown.aborted) return Status.NOT_SERVING;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("ping timed out")), pingTimeoutMs);
    });
    try {
      await Promise.race([ping(), timeout]);
      return shutdown.aborted ? Status.NOT_SERVING : Status.SERVING;
    } catch {
      return Status.NOT_SERVING;
    } finally {
      clearTimeout(timer);
    }
  };

  /** Resolves after `ms`, or as soon as the call or the server ends. */
  const pause = (ms: number, context: HandlerContext) =>
    new Promise<void>((resolve) => {
      const signals = [context.signal, shutdown];
      const done = () => {
        clearTimeout(timer);
        for (const s of signals) s.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      for (const s of signals) s.addEventListener("abort", done, { once: true });
    });

  return {
    async check(request) {
      if (!known.has(request.service)) {
        throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
      }
      return { status: await status() };
    },

    async list() {
      const now = await status();
      return { statuses: Object.fromEntries([...known].map((name) => [name, { status: now }])) };
    },

    async *watch(request, context) {
      // The protocol keeps a Watch of an unknown service open: it may become known later.
      if (!known.has(request.service)) {
        yield { status: Status.SERVICE_UNKNOWN };
        while (!context.signal.aborted && !shutdown.aborted) {
          await pause(watchIntervalMs, context);
        }
        throwIfDeadlineExceeded(context.signal);
        return;
      }
      let last: Status | undefined;
      while (!context.signal.aborted) {
        const now = await status();
        if (now !== last) {
          yield { status: now };
          last = now;
        }
        // After telling the watcher NOT_SERVING, end the call so shutdown need not wait for it.
        if (shutdown.aborted) return;
        await pause(watchIntervalMs, context);
      }
      throwIfDeadlineExceeded(context.signal);
    },
  };
}
