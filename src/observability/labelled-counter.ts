/**
 * A counter for what is counted on every call (gRPC's started and handled): the label values come
 * as an array in the order of the label names (labelled-series.ts), where prom-client's Counter
 * validates and hashes a labels object on every increment. It registers with a prom-client
 * Registry and is exposed exactly as prom-client exposes its own counters.
 */
import {
  type LabelledMetricConfiguration,
  LabelledSeries,
  registerWith,
} from "./labelled-series.ts";

interface Series {
  value: number;
  labels: Record<string, string>;
}

export type LabelledCounterConfiguration<L extends string> = LabelledMetricConfiguration<L>;

export class LabelledCounter<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = "counter" as const;
  readonly aggregator = "sum" as const;
  readonly labelNames: readonly L[];
  readonly #series: LabelledSeries<Series>;

  constructor(configuration: LabelledCounterConfiguration<L>) {
    this.name = configuration.name;
    this.help = configuration.help;
    this.labelNames = configuration.labelNames;
    this.#series = new LabelledSeries(this.labelNames, (labels) => ({ value: 0, labels }));
    registerWith(this, configuration.registers);
  }

  /** `values` in the order of `labelNames`. */
  inc(values: readonly string[], by = 1): void {
    if (!Number.isFinite(by) || by < 0) throw new RangeError(`cannot add ${by} to a counter`);
    this.#series.of(values).value += by;
  }

  reset(): void {
    this.#series.clear();
  }

  async get() {
    const { name, help, type, aggregator } = this;
    const values = this.#series
      .all()
      .map(({ value, labels }) => ({ value, labels: { ...labels } }));
    return { name, help, type, aggregator, values };
  }
}
