/** What a long-running command records: metrics (unless METRICS=off) and traces (when asked). */
import type { Logger } from "../logger.ts";
import { type Metrics, metricsFor } from "./metrics.ts";
import type { Tracing } from "./tracing.ts";
import { tracingWanted } from "./tracing-config.ts";

export interface Telemetry {
  metrics?: Metrics | undefined;
  tracing?: Tracing | undefined;
}

/**
 * The process' telemetry. `serviceName` is the default of OTEL_SERVICE_NAME (`petbooks-serve`,
 * `petbooks-grpc`…). The OpenTelemetry SDK is loaded only when traces are asked for: about 50 ms
 * of start-up that no command pays otherwise.
 */
export async function telemetryFor(
  config: { metrics: { enabled: boolean } },
  env: Record<string, string | undefined>,
  serviceName: string,
  logger: Logger,
): Promise<Telemetry> {
  const tracing = tracingWanted(env)
    ? (await import("./tracing.ts")).startTracing(env, serviceName, logger)
    : undefined;
  return { metrics: metricsFor(config), tracing };
}
