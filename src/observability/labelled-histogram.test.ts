import { describe, expect, test } from "bun:test";
import { Histogram, Registry } from "prom-client";
import { LabelledHistogram } from "./labelled-histogram.ts";

const config = {
  name: "test_duration_seconds",
  help: "Durations, by method and route.",
  labelNames: ["method", "route"] as const,
  buckets: [0.001, 0.01, 0.1, 1],
};

/** The same observations on prom-client's Histogram and on a LabelledHistogram. */
function both(observations: [method: string, route: string, value: number][]) {
  const ours = new Registry();
  const theirs = new Registry();
  const labelled = new LabelledHistogram({ ...config, registers: [ours] });
  const histogram = new Histogram({
    ...config,
    labelNames: [...config.labelNames],
    registers: [theirs],
  });
  for (const [method, route, value] of observations) {
    labelled.observe([method, route], value);
    histogram.observe({ method, route }, value);
  }
  return { ours, theirs, labelled };
}

describe("LabelledHistogram", () => {
  test("is exposed exactly as prom-client's Histogram with the same observations", async () => {
    const { ours, theirs } = both([
      ["GET", "/pets", 0.0004],
      ["GET", "/pets", 0.001], // on a bound: counted in that bucket
      ["GET", "/pets", 0.05],
      ["POST", "/pets", 3], // above every bound: only +Inf
      ["GET", "/books", 0.2],
      ["GET", "/pets", 0.7],
    ]);
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('test_duration_seconds_bucket{le="0.001",method="GET",route="/pets"} 2');
    expect(text).toContain('test_duration_seconds_bucket{le="+Inf",method="POST",route="/pets"} 1');
    expect(text).toContain('test_duration_seconds_count{method="GET",route="/pets"} 4');
    // prom-client's bucket values carry `exemplar: null`; exemplars are off here.
    const withoutExemplars = (json: unknown) =>
      JSON.parse(JSON.stringify(json, (key, value) => (key === "exemplar" ? undefined : value)));
    expect(await ours.getMetricsAsJSON()).toEqual(
      withoutExemplars(await theirs.getMetricsAsJSON()),
    );
  });

  test("counts nothing that is not a finite number", async () => {
    const { ours, labelled } = both([["GET", "/pets", 0.5]]);
    labelled.observe(["GET", "/pets"], Number.NaN);
    labelled.observe(["GET", "/pets"], Number.POSITIVE_INFINITY);
    expect(await ours.metrics()).toContain(
      'test_duration_seconds_count{method="GET",route="/pets"} 1',
    );
  });

  test("keeps label values apart however they are split", async () => {
    const { ours } = both([
      ["GET", "/a", 0.5],
      ["GET/", "a", 0.5],
    ]);
    const text = await ours.metrics();
    expect(text).toContain('test_duration_seconds_count{method="GET",route="/a"} 1');
    expect(text).toContain('test_duration_seconds_count{method="GET/",route="a"} 1');
  });

  test("reset forgets every series, as the registry's resetMetrics asks", async () => {
    const { ours } = both([["GET", "/pets", 0.5]]);
    ours.resetMetrics();
    expect(await ours.metrics()).not.toContain("test_duration_seconds_count");
  });
});
