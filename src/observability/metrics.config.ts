/** METRICS, METRICS_TOKEN and METRICS_PORT: parsed with the rest of the config (config.ts). */

export interface MetricsConfig {
  /** METRICS=off: no `/metrics`, no per-request or per-call recording at all. */
  enabled: boolean;
  /** METRICS_TOKEN: when set, `/metrics` wants `Authorization: Bearer <token>`. */
  token: string | undefined;
  /** METRICS_PORT: the HTTP listener of `grpc` for `/metrics` (serve uses its own PORT). */
  port: number;
}

export const DEFAULT_METRICS_PORT = 9464;
export const MIN_METRICS_TOKEN_LENGTH = 16;

/** The config loader's own helpers, so that every bad variable lands in its one message. */
export function parseMetricsConfig(
  value: (name: string) => string | undefined,
  integer: (name: string, fallback: number, min: number, max: number) => number,
  problems: string[],
): MetricsConfig {
  const switchValue = (value("METRICS") ?? "on").toLowerCase();
  const enabled = ["on", "true", "1"].includes(switchValue);
  if (!enabled && !["off", "false", "0"].includes(switchValue)) {
    problems.push(`METRICS must be on or off (got "${switchValue}")`);
  }
  const token = value("METRICS_TOKEN");
  if (token !== undefined && token.length < MIN_METRICS_TOKEN_LENGTH) {
    // Never the value: it is a secret.
    problems.push(`METRICS_TOKEN must be at least ${MIN_METRICS_TOKEN_LENGTH} characters long`);
  }
  return { enabled, token, port: integer("METRICS_PORT", DEFAULT_METRICS_PORT, 0, 65535) };
}
