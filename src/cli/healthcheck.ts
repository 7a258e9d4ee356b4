/**
 * `petbooks healthcheck`: for container HEALTHCHECKs in an image with no curl. Asks the local
 * `serve` (`/readyz`) or, with --grpc, the local `grpc` (grpc.health.v1.Health/Check), at the
 * address they listen on (HOST).
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type Config, listenerUrl } from "../config.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.ts";

const TIMEOUT_MS = 3000;

/** Loopback for the wildcard addresses; a server listening on one answers there too. */
const LOOPBACK_OF: Record<string, string> = { "0.0.0.0": "127.0.0.1", "::": "::1" };

/** Where a server listening on HOST answers from this machine. */
export function localUrl(host: string, port: number): string {
  return listenerUrl(LOOPBACK_OF[host] ?? host, port);
}

export async function checkHttp(
  config: Pick<Config, "host" | "port">,
): Promise<string | undefined> {
  const url = localUrl(config.host, config.port);
  try {
    const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    return res.ok ? undefined : `readyz answered ${res.status}`;
  } catch (err) {
    return `no answer on port ${config.port} (${url}): ${(err as Error).message}`;
  }
}

export async function checkGrpc(
  config: Pick<Config, "host" | "grpcPort">,
): Promise<string | undefined> {
  const url = localUrl(config.host, config.grpcPort);
  const client = createClient(Health, createGrpcTransport({ baseUrl: url }));
  try {
    const { status } = await client.check({ service: "" }, { timeoutMs: TIMEOUT_MS });
    return status === HealthCheckResponse_ServingStatus.SERVING
      ? undefined
      : `health is ${HealthCheckResponse_ServingStatus[status]}`;
  } catch (err) {
    return `no answer on port ${config.grpcPort} (${url}): ${(err as Error).message}`;
  }
}
