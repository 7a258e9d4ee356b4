import { afterEach, describe, expect, test } from "bun:test";
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";
import { TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { patchKafkaRequestQueue } from "./kafkajs-request-queue.ts";

const logger = { debug() {}, warn() {} };
const queue = (maxInFlightRequests: number | null) =>
  new RequestQueue({
    maxInFlightRequests,
    requestTimeout: 30_000,
    enforceRequestTimeout: false,
    clientId: "petbooks",
    broker: "kafka:9092",
    logger,
  });

/** Records the delays handed to setTimeout while `fn` runs. */
function timeoutsDuring(fn: () => void): number[] {
  const delays: number[] = [];
  const original = globalThis.setTimeout;
  globalThis.setTimeout = ((handler: () => void, ms?: number) => {
    delays.push(ms ?? 0);
    return original(handler, ms);
  }) as typeof setTimeout;
  try {
    fn();
  } finally {
    globalThis.setTimeout = original;
  }
  return delays;
}

const queues: RequestQueue[] = [];
afterEach(() => {
  for (const q of queues.splice(0)) q.destroy();
}, TEARDOWN_TIMEOUT_MS);

describe("kafkajs request queue fix", () => {
  patchKafkaRequestQueue();
  patchKafkaRequestQueue(); // twice is harmless

  test("a response with nothing pending schedules no timer (no negative delay, no 1 ms loop)", () => {
    const q = queue(null);
    queues.push(q);
    // What every response does (fulfillRequest -> checkPendingRequests -> schedule…); unpatched,
    // this hands setTimeout `-1 - Date.now()`.
    const delays = timeoutsDuring(() =>
      q.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 }),
    );
    expect(delays).toEqual([]);
    expect(q.throttleCheckTimeoutId).toBeNull();
  });

  test("requests waiting for a free slot are still checked, after a positive delay", () => {
    const q = queue(1);
    queues.push(q);
    q.pending.push({});
    const delays = timeoutsDuring(() => q.scheduleCheckPendingRequests());
    expect(delays).toEqual([10]);
  });

  test("requests held back by broker throttling are checked when the throttle ends", () => {
    const q = queue(null);
    queues.push(q);
    q.throttledUntil = Date.now() + 60_000;
    q.pending.push({});
    const [delay] = timeoutsDuring(() => q.scheduleCheckPendingRequests());
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(60_000);
  });
});
