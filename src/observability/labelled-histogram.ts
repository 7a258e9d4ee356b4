/**
 * A histogram for what is observed on every request: the label values come as an array in the
 * order of the label names, and a series is found by them (labelled-series.ts). prom-client's Histogram
 * takes a labels object, which it converts, validates and hashes on every observation: about
 * 8 µs of a GET /books in an in-process profile, where this one takes 2. It registers with a
 * prom-client Registry and is exposed exactly as prom-client exposes its own histograms (the same
 * lines, in the same order).
 */
import {
  type LabelledMetricConfiguration,
  LabelledSeries,
  registerWith,
} from "./labelled-series.ts";

interface Series {
  labels: Record<string, string>;
  /** Observations per bucket (not cumulative), one for each upper bound. */
  buckets: number[];
  sum: number;
  count: number;
}

/** One line of the exposition, as prom-client's Registry reads it. */
interface Sample {
  value: number;
  metricName: string;
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
}

interface Exposed {
  name: string;
  help: string;
  type: "histogram";
  aggregator: "sum";
  values: Sample[];
}

export interface LabelledHistogramConfiguration<L extends string>
  extends LabelledMetricConfiguration<L> {
  /** Upper bounds, ascending; `+Inf` is implied. */
  buckets: readonly number[];
}

export class LabelledHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = "histogram" as const;
  readonly aggregator = "sum" as const;
  readonly labelNames: readonly L[];
  readonly #bounds: readonly number[];
  readonly #series: LabelledSeries<Series>;

  constructor(configuration: LabelledHistogramConfiguration<L>) {
    this.name = configuration.name;
    this.help = configuration.help;
    this.labelNames = configuration.labelNames;
    this.#bounds = configuration.buckets;
    this.#series = new LabelledSeries(this.labelNames, (labels) => ({
      labels,
      buckets: this.#bounds.map(() => 0),
      sum: 0,
      count: 0,
    }));
    registerWith(this, configuration.registers);
  }

  /** `values` in the order of `labelNames`; a value that is not finite is not counted. */
  observe(values: readonly string[], value: number): void {
    if (!Number.isFinite(value)) return;
    const series = this.#series.of(values);
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        series.buckets[i] = (series.buckets[i] as number) + 1;
        break;
      }
    }
    series.sum += value;
    series.count += 1;
  }

  reset(): void {
    this.#series.clear();
  }

  /** The text exposition's values, shaped as prom-client's own histograms give theirs. */
  getForPromString(): Exposed {
    const values: Sample[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const series of this.#series.all()) {
      const shared = series.labels;
      let cumulative = 0;
      this.#bounds.forEach((bound, i) => {
        cumulative += series.buckets[i] as number;
        values.push({
          value: cumulative,
          metricName: bucketName,
          labels: { le: bound },
          sharedLabels: shared,
        });
      });
      values.push(
        {
          value: series.count,
          metricName: bucketName,
          labels: { le: "+Inf" },
          sharedLabels: shared,
        },
        { value: series.sum, metricName: `${this.name}_sum`, labels: {}, sharedLabels: shared },
        { value: series.count, metricName: `${this.name}_count`, labels: {}, sharedLabels: shared },
      );
    }
    return this.#exposed(values);
  }

  /** The same values with every label on each (as prom-client's `get` gives them). */
  async get(): Promise<Exposed> {
    const { values } = this.getForPromString();
    return this.#exposed(
      values.map(({ value, metricName, labels, sharedLabels }) => ({
        value,
        metricName,
        labels: { ...sharedLabels, ...labels },
      })),
    );
  }

  #exposed(values: Sample[]): Exposed {
    const { name, help, type, aggregator } = this;
    return { name, help, type, aggregator, values };
  }
}
