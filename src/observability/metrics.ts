/**
 * Every Prometheus metric of a petbooks process, on one registry per process (never prom-client's
 * global one, so in-process tests can build as many apps as they like). Names follow Prometheus
 * conventions: base units, `_total` counters, `_seconds` durations, and only bounded label values
 * (route templates, gRPC method names, fixed reasons), never raw paths or ids.
 */
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type MetricConfiguration,
  Registry,
} from "prom-client";
import type { OutboxHealth } from "../events/relay.ts";
import { BUILD_INFO } from "./build-info.ts";
import { LabelledCounter, type LabelledCounterConfiguration } from "./labelled-counter.ts";
import { LabelledHistogram, type LabelledHistogramConfiguration } from "./labelled-histogram.ts";

/** Seconds: from a cache hit (~1 ms) to a request that waited on a dead dependency (10 s). */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Bytes: an empty answer to the largest photo (10 MiB by default). */
const SIZE_BUCKETS = [
  64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216,
];
/** Events per relay batch (500 at most by default). */
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];

/** What the outbox gauges read at scrape time: the process' relay, and the pending count. */
export interface OutboxSource {
  health(): OutboxHealth;
  /** Events not yet published (one count over the pending-rows index). */
  pending(): Promise<number>;
}

/** The event consumer's running counts (events/consumer.ts `stats`). */
export interface ConsumerSource {
  stats(): { new: number; duplicate: number; malformed: number };
}

/**
 * Default metrics left out. The `_total` gauges are named like counters, which `promtool check
 * metrics` rejects, and each copies the gauge of the same name without `_total`, which stays. The
 * heap-space gauges cost Bun a walk of the whole heap on every scrape (66 ms with a 300k-object
 * heap, measured), blocking the event loop meanwhile; `nodejs_heap_size_*_bytes` stays.
 */
const LEFT_OUT_DEFAULT_METRICS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
  "nodejs_heap_space_size_total_bytes",
  "nodejs_heap_space_size_used_bytes",
  "nodejs_heap_space_size_available_bytes",
];

/** How often the event-loop lag is sampled: every 10 ms (the default) costs 0.3% of a core idle. */
const EVENT_LOOP_SAMPLE_MS = 20;

export interface CreateMetricsOptions {
  /** Process metrics (CPU, memory, descriptors, event-loop lag, GC); off in unit tests. */
  processMetrics?: boolean;
}

export function createMetrics(options: CreateMetricsOptions = {}) {
  const registry = new Registry();
  /** Read at scrape time; set by the parts of the process that have them. */
  const sources = {
    inFlight: [] as (() => number)[],
    outbox: undefined as OutboxSource | undefined,
    consumer: undefined as ConsumerSource | undefined,
  };
  type Collect<L extends string> = { collect?: (this: Gauge<L>) => void | Promise<void> };
  const counter = <L extends string>(
    c: Omit<MetricConfiguration<L>, "registers"> & {
      collect?: (this: Counter<L>) => void | Promise<void>;
    },
  ) => new Counter<L>({ ...c, registers: [registry] });
  const gauge = <L extends string>(c: Omit<MetricConfiguration<L>, "registers"> & Collect<L>) =>
    new Gauge<L>({ ...c, registers: [registry] });
  const outboxGauge = (name: string, help: string, read: (h: OutboxHealth) => number) =>
    gauge({
      name,
      help,
      collect() {
        if (sources.outbox) this.set(read(sources.outbox.health()));
      },
    });
  const histogram = <L extends string>(
    c: Omit<MetricConfiguration<L>, "registers"> & { buckets: number[] },
  ) => new Histogram<L>({ ...c, registers: [registry] });
  /** For what is counted on every call (see LabelledCounter). */
  const perCallCounter = <L extends string>(
    c: Omit<LabelledCounterConfiguration<L>, "registers">,
  ) => new LabelledCounter<L>({ ...c, registers: [registry] });
  /** For what is observed on every request or call (see LabelledHistogram). */
  const perRequestHistogram = <L extends string>(
    c: Omit<LabelledHistogramConfiguration<L>, "registers">,
  ) => new LabelledHistogram<L>({ ...c, registers: [registry] });

  if (options.processMetrics !== false) {
    collectDefaultMetrics({
      register: registry,
      eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
    });
    for (const name of LEFT_OUT_DEFAULT_METRICS) registry.removeSingleMetric(name);
  }
  gauge({
    name: "petbooks_build_info",
    help: "Always 1; the labels say which build is running.",
    labelNames: ["version", "commit", "bun"],
  }).set({ version: BUILD_INFO.version, commit: BUILD_INFO.commit, bun: Bun.version }, 1);

  return {
    registry,
    /** Counts requests being handled; every HTTP server of the process adds its own. */
    addInFlight(count: () => number) {
      sources.inFlight.push(count);
    },
    /** The consumer whose counts `petbooks_consumer_events_total` shows (one per process). */
    setConsumer(source: ConsumerSource) {
      sources.consumer = source;
    },
    /** The relay whose state the outbox gauges show (one per process). */
    setOutbox(source: OutboxSource) {
      sources.outbox = source;
    },
    http: {
      duration: perRequestHistogram({
        name: "http_server_request_duration_seconds",
        help: "HTTP requests by method, route template and status class, from arrival to answer.",
        labelNames: ["method", "route", "status_class"],
        buckets: DURATION_BUCKETS,
      }),
      requestSize: perRequestHistogram({
        name: "http_server_request_size_bytes",
        help: "Declared (Content-Length) sizes of HTTP request bodies, by method and route template.",
        labelNames: ["method", "route"],
        buckets: SIZE_BUCKETS,
      }),
      responseSize: perRequestHistogram({
        name: "http_server_response_size_bytes",
        help: "Sizes of HTTP response bodies known before they are sent (files, photos, pre-serialised bodies), by method and route template.",
        labelNames: ["method", "route"],
        buckets: SIZE_BUCKETS,
      }),
      inFlight: gauge({
        name: "http_server_requests_in_flight",
        help: "HTTP requests being handled now.",
        collect() {
          this.set(sources.inFlight.reduce((sum, count) => sum + count(), 0));
        },
      }),
      authFailures: counter({
        name: "petbooks_auth_failures_total",
        help: "Requests refused with 401 (missing or wrong API key, bearer token or password), by route template.",
        labelNames: ["route"],
      }),
      rateLimited: counter({
        name: "petbooks_rate_limit_rejections_total",
        help: "Requests refused with 429 by the abuse limits, by route template.",
        labelNames: ["route"],
      }),
    },
    grpc: {
      started: perCallCounter({
        name: "grpc_server_started_total",
        help: "RPCs started on the server (gRPC, gRPC-Web and Connect).",
        labelNames: ["grpc_type", "grpc_service", "grpc_method"],
      }),
      handled: perCallCounter({
        name: "grpc_server_handled_total",
        help: "RPCs completed on the server, by status code.",
        labelNames: ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
      }),
      handling: perRequestHistogram({
        name: "grpc_server_handling_seconds",
        help: "Time from the start of an RPC to its status, as the server saw it.",
        labelNames: ["grpc_type", "grpc_service", "grpc_method"],
        buckets: DURATION_BUCKETS,
      }),
    },
    outbox: {
      published: counter({
        name: "petbooks_outbox_events_published_total",
        help: "Outbox events the relay handed to the event transport and marked published.",
      }),
      publishFailures: counter({
        name: "petbooks_outbox_publish_failures_total",
        help: "Relay batch attempts that failed, by reason; the events stay pending and are retried.",
        labelNames: ["reason"],
      }),
      batchSize: histogram({
        name: "petbooks_outbox_relay_batch_size",
        help: "Events per published relay batch.",
        buckets: BATCH_BUCKETS,
      }),
      batchDuration: histogram({
        name: "petbooks_outbox_relay_batch_duration_seconds",
        help: "Time to claim, publish and mark one relay batch (successful batches).",
        buckets: DURATION_BUCKETS,
      }),
      pending: gauge({
        name: "petbooks_outbox_pending_events",
        help: "Outbox events not yet published (counted at scrape time).",
        async collect() {
          if (!sources.outbox) return;
          // A scrape must answer while the database is down: the last count stays.
          const pending = await sources.outbox.pending().catch(() => undefined);
          if (pending !== undefined) this.set(pending);
        },
      }),
      oldestAge: outboxGauge(
        "petbooks_outbox_oldest_pending_age_seconds",
        "Age of the oldest unpublished outbox event at the relay's last stall check; 0 when none is pending.",
        (h) => h.oldestPendingSeconds ?? 0,
      ),
      stallThreshold: outboxGauge(
        "petbooks_outbox_stall_threshold_seconds",
        "OUTBOX_STALL_SECONDS: the outbox counts as stalled once its oldest event is older.",
        (h) => h.stallSeconds,
      ),
      stalled: outboxGauge(
        "petbooks_outbox_stalled",
        "1 while the oldest unpublished event is older than OUTBOX_STALL_SECONDS, else 0.",
        (h) => (h.status === "stalled" ? 1 : 0),
      ),
      consecutiveFailures: outboxGauge(
        "petbooks_outbox_relay_consecutive_failures",
        "Relay runs failed in a row (0 once one succeeds).",
        (h) => h.consecutiveFailures,
      ),
      producerRecreations: counter({
        name: "petbooks_kafka_producer_recreations_total",
        help: "Kafka producers replaced because the broker stopped accepting the old one's sequence numbers.",
        collect() {
          if (!sources.outbox) return;
          // The transport counts them; mirrored here at scrape time.
          this.reset();
          this.inc(sources.outbox.health().producerRecreations);
        },
      }),
    },
    consumer: {
      events: counter({
        name: "petbooks_consumer_events_total",
        help: "Book events the consumer handled, by result: new, duplicate (already handled) or malformed (skipped).",
        labelNames: ["result"],
        collect() {
          if (!sources.consumer) return;
          // The consumer counts them; mirrored here at scrape time.
          const counts = sources.consumer.stats();
          this.reset();
          for (const result of ["new", "duplicate", "malformed"] as const) {
            this.inc({ result }, counts[result]);
          }
        },
      }),
      handling: histogram({
        name: "petbooks_consumer_batch_duration_seconds",
        help: "Time to handle one batch of events (decode, remember the ids, log).",
        buckets: DURATION_BUCKETS,
      }),
      lag: gauge({
        name: "petbooks_consumer_lag_messages",
        help: "Messages on the partition after the last one handled (kafkajs's offset lag at the end of a batch).",
        labelNames: ["topic", "partition"],
      }),
      rebalances: counter({
        name: "petbooks_consumer_rebalances_total",
        help: "Times the Kafka consumer (re)joined its group, that is partitions were (re)assigned.",
      }),
      crashes: counter({
        name: "petbooks_consumer_crashes_total",
        help: "Kafka consumer crashes, by whether kafkajs restarts it.",
        labelNames: ["restart"],
      }),
    },
    cache: {
      hits: counter({
        name: "petbooks_cache_hits_total",
        help: "Cache reads that found an entry, by cache.",
        labelNames: ["cache"],
      }),
      misses: counter({
        name: "petbooks_cache_misses_total",
        help: "Cache reads that found nothing (the database answered), by cache.",
        labelNames: ["cache"],
      }),
      errors: counter({
        name: "petbooks_cache_errors_total",
        help: "Cache operations that failed or timed out (the request went on without the cache), by operation.",
        labelNames: ["operation"],
      }),
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The metrics of a long-running command: none with METRICS=off. */
export function metricsFor(config: { metrics: { enabled: boolean } }): Metrics | undefined {
  return config.metrics.enabled ? createMetrics() : undefined;
}
