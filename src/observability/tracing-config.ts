/**
 * Whether the standard OpenTelemetry variables ask for traces. Kept apart from the SDK
 * (tracing.ts), which is loaded only when they do: every command starts without it otherwise.
 */
export function tracingWanted(env: Record<string, string | undefined>): boolean {
  if ((env.OTEL_SDK_DISABLED ?? "").trim().toLowerCase() === "true") return false;
  if ((env.OTEL_TRACES_EXPORTER ?? "").trim().toLowerCase() === "none") return false;
  return Boolean(
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim(),
  );
}

/** The samplers OTEL_TRACES_SAMPLER may name (tracing.ts `samplerFromEnv`). */
export const TRACE_SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;

/**
 * What is wrong with the tracing variables, when they turn tracing on: a collector address that
 * is no http(s) URL would drop every span without a word, an unknown sampler would trace every
 * request. The endpoint's value is not repeated: it may hold credentials.
 */
export function tracingProblems(env: Record<string, string | undefined>): string[] {
  if (!tracingWanted(env)) return [];
  const problems: string[] = [];
  for (const name of ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]) {
    const endpoint = env[name]?.trim();
    if (!endpoint) continue;
    if (!URL.canParse(endpoint)) problems.push(`${name} is not a valid URL`);
    else if (!/^https?:$/.test(new URL(endpoint).protocol)) {
      problems.push(`${name} must be an http:// or https:// URL (OTLP over HTTP)`);
    }
  }
  const sampler = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase();
  if (sampler && !(TRACE_SAMPLERS as readonly string[]).includes(sampler)) {
    problems.push(
      `OTEL_TRACES_SAMPLER must be one of ${TRACE_SAMPLERS.join(", ")} (got "${sampler}")`,
    );
  }
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  if (arg && sampler?.endsWith("traceidratio") && !(Number(arg) >= 0 && Number(arg) <= 1)) {
    problems.push(`OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1 (got "${arg}")`);
  }
  return problems;
}
