/**
 * The series of a metric observed on every request or call (LabelledHistogram,
 * LabelledCounter), found by their label values one level at a time: the values are a handful of
 * methods, routes and codes, each a string hashed once, where one key joined from them, or
 * prom-client's hash of a labels object, was new work on every observation.
 */
import type { Metric, Registry } from "prom-client";

/** What LabelledCounter and LabelledHistogram are made with. */
export interface LabelledMetricConfiguration<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: Registry[];
}

/** Registers a metric of ours with prom-client Registries, which read it as one of their own. */
export function registerWith(metric: object, registers: readonly Registry[]): void {
  for (const registry of registers) registry.registerMetric(metric as Metric);
}

type Level<S> = Map<string, Level<S> | S>;

export class LabelledSeries<S extends object> {
  readonly #labelNames: readonly string[];
  readonly #create: (labels: Record<string, string>) => S;
  readonly #root: Level<S> = new Map();
  /** In the order first observed, as the exposition lists them. */
  readonly #all: S[] = [];

  constructor(labelNames: readonly string[], create: (labels: Record<string, string>) => S) {
    this.#labelNames = labelNames;
    this.#create = create;
  }

  /** The series of `values`, in the order of the label names; made on first use. */
  of(values: readonly string[]): S {
    let level = this.#root;
    const last = this.#labelNames.length - 1;
    for (let i = 0; i < last; i++) {
      const value = values[i] ?? "";
      let next = level.get(value);
      if (!(next instanceof Map)) {
        next = new Map();
        level.set(value, next);
      }
      level = next;
    }
    const leaf = values[last] ?? "";
    const found = level.get(leaf);
    if (found !== undefined && !(found instanceof Map)) return found;
    const labels: Record<string, string> = {};
    for (let i = 0; i < this.#labelNames.length; i++) {
      labels[this.#labelNames[i] as string] = values[i] ?? "";
    }
    const series = this.#create(labels);
    level.set(leaf, series);
    this.#all.push(series);
    return series;
  }

  all(): readonly S[] {
    return this.#all;
  }

  clear(): void {
    this.#root.clear();
    this.#all.length = 0;
  }
}
