import type { Logger } from "../logger.ts";
import type { InFlight } from "./in-flight.ts";

/**
 * Stops accepting connections, lets in-flight requests finish (for at most `graceMs`), handlers
 * whose client already left included, then closes whatever is left, idle keep-alive connections
 * too, so they cannot hold the process open.
 */
export async function drain(
  server: Bun.Server<unknown>,
  inFlight: InFlight,
  graceMs: number,
  logger: Logger,
): Promise<void> {
  void server.stop(false);
  const deadline = performance.now() + graceMs;
  const busy = () => server.pendingRequests > 0 || inFlight.count > 0;
  while (busy() && performance.now() < deadline) await Bun.sleep(20);
  if (busy()) {
    logger.warn("in-flight requests did not finish in time; closing them", {
      pending: Math.max(server.pendingRequests, inFlight.count),
      grace_ms: graceMs,
    });
  }
  await server.stop(true);
}
