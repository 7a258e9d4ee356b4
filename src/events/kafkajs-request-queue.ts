/**
 * A fix for kafkajs 2.2.4's request queue (kafkajs issues #1704 and #1751, unreleased upstream).
 *
 * After every response, `fulfillRequest` calls `checkPendingRequests`, which always ends in
 * `scheduleCheckPendingRequests` (src/network/requestQueue/index.js, lines 206 and 297). With
 * nothing pending and no throttling, that computes `throttledUntil - Date.now()` = `-1 - now`, a
 * negative delay (line 312), and hands it to `setTimeout` (line 317): Bun and Node print
 * "TimeoutNegativeWarning: -17…  is a negative number" as raw stderr lines, run the timer after
 * 1 ms, and the timer calls `checkPendingRequests` again: a 1 ms loop per broker connection for as
 * long as it stays open.
 *
 * A check is only needed while requests wait: `push` schedules one when it queues a request (line
 * 167), and every response or timeout checks the queue again. So with nothing pending there is
 * nothing to schedule; with requests pending, kafkajs's own code already picks a positive delay
 * (the rest of the throttle, or 10 ms).
 */
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";

const PATCHED = Symbol.for("petbooks.kafkajs.requestQueue.patched");

type Patchable = typeof RequestQueue.prototype & { [PATCHED]?: true };

/** Idempotent; call before the first kafkajs connection is made. */
export function patchKafkaRequestQueue(): void {
  const proto = RequestQueue.prototype as Patchable;
  if (proto[PATCHED] || typeof proto.scheduleCheckPendingRequests !== "function") return;
  const schedule = proto.scheduleCheckPendingRequests;
  proto.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(this: RequestQueue) {
    if (this.pending.length === 0) return;
    schedule.call(this);
  };
  proto[PATCHED] = true;
}
