/**
 * Liveness and readiness probes; no API key, so orchestrators can call them.
 *
 * Readiness is the database only. A stalled outbox (the broker is down, or the relay is stuck)
 * is shown with `?verbose` but never fails the probe: every replica shares the same broker, so a
 * 503 would take all of them out of the load balancer at once, although writes still commit and
 * their events wait safely in the outbox. The relay's error line and this detail are the alarm.
 */
import { Elysia, t } from "elysia";
import type { Database } from "../db/client.ts";
import { RetryLaterError } from "../errors.ts";
import type { OutboxHealth } from "../events/relay.ts";
import { DATABASE_RETRY_AFTER_SECONDS, DATABASE_UNAVAILABLE } from "./problem.ts";
import { problemResponses } from "./problem-responses.ts";

const Alive = t.Object({ status: t.UnionEnum(["ok"]) }, { description: "Healthy." });

const OutboxStatus = t.Object(
  {
    status: t.UnionEnum(["ok", "stalled"], {
      description: "`stalled`: the oldest unpublished event is older than OUTBOX_STALL_SECONDS.",
    }),
    oldest_pending_seconds: t.Union([t.Number(), t.Null()], {
      description: "Age of the oldest unpublished event at the last check; null if none.",
    }),
    stall_seconds: t.Number({ description: "OUTBOX_STALL_SECONDS." }),
    consecutive_failures: t.Integer({ description: "Relay runs failed in a row." }),
    producer_recreations: t.Integer({
      description: "Kafka producers replaced after the broker refused their sequence numbers.",
    }),
  },
  { description: "The outbox relay of this process." },
);

const Status = t.Object(
  {
    status: t.UnionEnum(["ok"]),
    database: t.Optional(t.UnionEnum(["ok"])),
    outbox: t.Optional(OutboxStatus),
  },
  { description: "Ready. With `?verbose`, what each part reports." },
);

const ReadyQuery = t.Object({
  verbose: t.Optional(
    t.String({
      description:
        "Present (`?verbose`, any value but `false` or `0`): add the database and outbox detail.",
    }),
  ),
});

export interface OutboxProbe {
  health(): OutboxHealth;
}

const outboxDetail = (health: OutboxHealth) => ({
  status: health.status,
  oldest_pending_seconds:
    health.oldestPendingSeconds === null ? null : Math.round(health.oldestPendingSeconds),
  stall_seconds: health.stallSeconds,
  consecutive_failures: health.consecutiveFailures,
  producer_recreations: health.producerRecreations,
});

/** `outbox`: the relay of a `serve` process, for the verbose detail. */
export function healthRoutes(database: Database, outbox?: OutboxProbe) {
  return new Elysia({ name: "health" })
    .get("/healthz", () => ({ status: "ok" as const }), {
      response: { 200: Alive },
      detail: { tags: ["health"], summary: "The process is up" },
    })
    .get(
      "/readyz",
      async ({ query }) => {
        try {
          // Bounded by DATABASE_TIMEOUT_MS (db/client.ts): a probe never hangs on a dead database.
          await database.ping();
        } catch {
          throw new RetryLaterError(
            "unavailable",
            DATABASE_UNAVAILABLE,
            DATABASE_RETRY_AFTER_SECONDS,
          );
        }
        if (query.verbose === undefined || /^(false|0)$/i.test(query.verbose)) {
          return { status: "ok" as const };
        }
        return {
          status: "ok" as const,
          database: "ok" as const,
          ...(outbox && { outbox: outboxDetail(outbox.health()) }),
        };
      },
      {
        query: ReadyQuery,
        response: { 200: Status, ...problemResponses({ query: ReadyQuery }, 422, 503) },
        detail: {
          tags: ["health"],
          summary: "The database answers",
          description:
            "200 while the database answers within DATABASE_TIMEOUT_MS, 503 with `Retry-After` " +
            "otherwise. `?verbose` adds the outbox relay's " +
            "state: `stalled` when the oldest unpublished event is older than " +
            "OUTBOX_STALL_SECONDS, which is reported but never fails the probe.",
        },
      },
    );
}
