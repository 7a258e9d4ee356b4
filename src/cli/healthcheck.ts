/**
 * `petbooks healthcheck`: for container HEALTHCHECKs in an image with no curl. Asks the local
 * `serve` (`/readyz`) or, with --grpc, the local `grpc` (grpc.health.v1.Health/Check).
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Config } from "../config.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.ts";

const TIMEOUT_MS = 3000;

export async function checkHttp(config: Pick<Config, "port">): Promise<string | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${config.port}/readyz`, {
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    return res.ok ? undefined : `readyz answered ${res.status}`;
  } catch (err) {
    return `no answer on port ${config.port}: ${(err as Error).message}`;
  }
}

export async function checkGrpc(config: Pick<Config, "grpcPort">): Promise<string | undefined> {
  const client = createClient(
    Health,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${config.grpcPort}` }),
  );
  try {
    const { status } = await client.check({ service: "" }, { timeoutMs: TIMEOUT_MS });
    return status === HealthCheckResponse_ServingStatus.SERVING
      ? undefined
      : `health is ${HealthCheckResponse_ServingStatus[status]}`;
  } catch (err) {
    return `no answer on port ${config.grpcPort}: ${(err as Error).message}`;
  }
}
