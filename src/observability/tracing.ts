/**
 * OpenTelemetry tracing, off unless the standard variables ask for it: OTEL_EXPORTER_OTLP_ENDPOINT
 * or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (OTLP over HTTP, JSON; OTEL_EXPORTER_OTLP_HEADERS…),
 * OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, OTEL_BSP_*,
 * OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER=none.
 * Off, nothing here runs per request: the HTTP plugin, the gRPC interceptor, the cache decorator
 * and the log correlation are simply not installed.
 */
import {
  type Context,
  context,
  DiagLogLevel,
  diag,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  type SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  SimpleSpanProcessor,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { correlateLogs, type Logger } from "../logger.ts";
import { exceptionOf } from "../redact.ts";
import { BUILD_INFO } from "./build-info.ts";
import { setTraceparentSource } from "./event-traces.ts";
import { tracingWanted } from "./tracing-config.ts";

type Env = Record<string, string | undefined>;

export interface Tracing {
  tracer: Tracer;
  /** The W3C trace context of `carrier` (`traceparent`, `tracestate`), or none. */
  extract(carrier: Headers): Context;
  /** The context a stored `traceparent` names (an outbox row's, a Kafka header's), or none. */
  fromTraceparent(traceparent: string | undefined): Context;
  /** The `traceparent` of the span running now; undefined outside one. */
  traceparent(): string | undefined;
  /** `trace_id` and `span_id` of the span running now, for log lines; undefined outside one. */
  logFields(): { trace_id: string; span_id: string } | undefined;
  /** Runs `fn` in a new span, ended when it settles (with ERROR status if it throws). */
  inSpan<T>(name: string, kind: SpanKind, fn: (span: Span) => Promise<T>): Promise<T>;
  /** Exports what is still buffered; for shutdown. */
  shutdown(): Promise<void>;
}

const headerGetter: TextMapGetter<Headers> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key) ?? undefined,
};

const recordGetter: TextMapGetter<Record<string, string>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/** OTEL_TRACES_SAMPLER and its argument, as the specification defines them. */
export function samplerFromEnv(env: Env): Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? "parentbased_always_on").trim().toLowerCase();
  const arg = Number(env.OTEL_TRACES_SAMPLER_ARG ?? "1");
  const ratio = Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1;
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

let contextManagerSet = false;

export interface TracingOptions {
  /** OTEL_SERVICE_NAME when set, else this (`petbooks-serve`, `petbooks-grpc`…). */
  serviceName: string;
  /** Tests: spans go here, exported one by one, instead of to the OTLP endpoint. */
  exporter?: SpanExporter;
  sampler?: Sampler;
  /** OTEL_BSP_*: how the batch processor buffers spans before an export. */
  batch?: BatchOptions;
}

export interface BatchOptions {
  scheduledDelayMillis?: number;
  maxQueueSize?: number;
  maxExportBatchSize?: number;
  exportTimeoutMillis?: number;
}

/** The OTEL_BSP_* variables that are set to a positive integer; the SDK's defaults otherwise. */
export function batchOptionsFromEnv(env: Env): BatchOptions {
  const read = (name: string) => {
    const n = Number(env[name]?.trim());
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  };
  const options: BatchOptions = {
    scheduledDelayMillis: read("OTEL_BSP_SCHEDULE_DELAY"),
    maxQueueSize: read("OTEL_BSP_MAX_QUEUE_SIZE"),
    maxExportBatchSize: read("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
    exportTimeoutMillis: read("OTEL_BSP_EXPORT_TIMEOUT"),
  };
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}

/** Tracing as the environment asks for it, or undefined (the default: off). */
export function tracingFromEnv(env: Env, options: TracingOptions): Tracing | undefined {
  if (!options.exporter && !tracingWanted(env)) return undefined;
  return createTracing({
    ...options,
    serviceName: env.OTEL_SERVICE_NAME?.trim() || options.serviceName,
    sampler: options.sampler ?? samplerFromEnv(env),
    batch: options.batch ?? batchOptionsFromEnv(env),
  });
}

export function createTracing(options: TracingOptions): Tracing {
  // Context follows async calls through AsyncLocalStorage, which Bun implements; set once per
  // process (a second provider, in tests, shares it).
  if (!contextManagerSet) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    contextManagerSet = true;
  }
  const exporter = options.exporter ?? new OTLPTraceExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: options.serviceName,
      [ATTR_SERVICE_VERSION]: BUILD_INFO.version,
      "service.commit": BUILD_INFO.commit,
    }),
    sampler: options.sampler,
    spanProcessors: [
      options.exporter
        ? new SimpleSpanProcessor({ exporter })
        : new BatchSpanProcessor({ exporter, ...options.batch }),
    ],
  });
  const tracer = provider.getTracer("petbooks", BUILD_INFO.version);
  const propagator = new W3CTraceContextPropagator();
  const tracing: Tracing = {
    tracer,
    extract: (carrier) => propagator.extract(ROOT_CONTEXT, carrier, headerGetter),
    fromTraceparent: (traceparent) =>
      traceparent ? propagator.extract(ROOT_CONTEXT, { traceparent }, recordGetter) : ROOT_CONTEXT,
    traceparent() {
      const carrier: Record<string, string> = {};
      propagator.inject(context.active(), carrier, {
        set: (c, key, value) => {
          c[key] = value;
        },
      });
      return carrier.traceparent;
    },
    logFields() {
      // The access log line is written once the answer is made, inside the request's span.
      const ids = trace.getSpan(context.active())?.spanContext();
      if (!ids || !isSpanContextValid(ids)) return undefined;
      return { trace_id: ids.traceId, span_id: ids.spanId };
    },
    inSpan: (name, kind, fn) =>
      tracer.startActiveSpan(name, { kind }, async (span) => {
        try {
          return await fn(span);
        } catch (err) {
          span.recordException(exceptionOf(err));
          span.setStatus({ code: SpanStatusCode.ERROR });
          throw err;
        } finally {
          span.end();
        }
      }),
    shutdown: () => provider.shutdown(),
  };
  // Outbox rows written from now on carry the writer's trace (event-traces.ts).
  setTraceparentSource(() => tracing.traceparent());
  return tracing;
}

/**
 * Tracing for a command, as the environment asks: log lines inside a trace get its ids, and the
 * SDK's own trouble (a collector out of reach, spans dropped) becomes our warnings.
 */
export function startTracing(env: Env, serviceName: string, logger: Logger): Tracing | undefined {
  const tracing = tracingFromEnv(env, { serviceName });
  if (!tracing) return undefined;
  correlateLogs(() => tracing.logFields());
  const log = logger.child({ module: "otel" });
  const warn = (message: string) => log.warn(message);
  diag.setLogger(
    { error: warn, warn, info: () => {}, debug: () => {}, verbose: () => {} },
    DiagLogLevel.WARN,
  );
  log.info("tracing on", { service: env.OTEL_SERVICE_NAME?.trim() || serviceName });
  return tracing;
}
