import { describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import type { Database } from "../db/client.ts";
import type { OutboxHealth } from "../events/relay.ts";
import { silentLogger } from "../logger.ts";
import { healthRoutes } from "./health.http.ts";
import { InFlight } from "./in-flight.ts";
import { requestContext } from "./request-context.ts";

const database = (up: boolean) =>
  ({
    ping: async () => {
      if (!up) throw new Error("connection refused");
    },
  }) as unknown as Database;

const stalled: OutboxHealth = {
  status: "stalled",
  oldestPendingSeconds: 125.4,
  stallSeconds: 60,
  consecutiveFailures: 7,
  producerRecreations: 1,
};

function app(options: { databaseUp?: boolean; outbox?: OutboxHealth | null } = {}) {
  const outbox = options.outbox === null ? undefined : (options.outbox ?? stalled);
  return new Elysia()
    .use(
      requestContext({ logger: silentLogger, maxBodyBytes: () => 1024, inFlight: new InFlight() }),
    )
    .use(healthRoutes(database(options.databaseUp ?? true), outbox && { health: () => outbox }));
}

const get = async (a: ReturnType<typeof app>, path: string) => {
  const res = await a.handle(new Request(`http://localhost${path}`));
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe("/readyz", () => {
  test("a stalled outbox does not fail readiness: the plain answer stays the same", async () => {
    expect(await get(app(), "/readyz")).toEqual({ status: 200, body: { status: "ok" } });
  });

  test.each(["/readyz?verbose", "/readyz?verbose=1", "/readyz?verbose=true"])(
    "%s reports the outbox relay's state",
    async (path) => {
      expect(await get(app(), path)).toEqual({
        status: 200,
        body: {
          status: "ok",
          database: "ok",
          outbox: {
            status: "stalled",
            oldest_pending_seconds: 125,
            stall_seconds: 60,
            consecutive_failures: 7,
            producer_recreations: 1,
          },
        },
      });
    },
  );

  test("an outbox with nothing pending", async () => {
    const healthy: OutboxHealth = { ...stalled, status: "ok", oldestPendingSeconds: null };
    const { body } = await get(app({ outbox: healthy }), "/readyz?verbose");
    expect(body.outbox).toMatchObject({ status: "ok", oldest_pending_seconds: null });
  });

  test.each(["/readyz?verbose=false", "/readyz?verbose=0"])(
    "%s is the plain answer",
    async (path) => {
      expect(await get(app(), path)).toEqual({ status: 200, body: { status: "ok" } });
    },
  );

  test("a process without a relay reports the database only", async () => {
    expect(await get(app({ outbox: null }), "/readyz?verbose")).toEqual({
      status: 200,
      body: { status: "ok", database: "ok" },
    });
  });

  test("the database being down is still a 503, verbose or not", async () => {
    for (const path of ["/readyz", "/readyz?verbose"]) {
      const { status, body } = await get(app({ databaseUp: false }), path);
      expect(status).toBe(503);
      expect(body).toMatchObject({ status: 503, code: "unavailable" });
    }
  });
});
