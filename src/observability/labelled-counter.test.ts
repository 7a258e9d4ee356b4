import { describe, expect, test } from "bun:test";
import { Counter, Registry } from "prom-client";
import { LabelledCounter } from "./labelled-counter.ts";

const config = {
  name: "test_calls_total",
  help: "Calls, by method and code.",
  labelNames: ["method", "code"] as const,
};

/** The same increments on prom-client's Counter and on a LabelledCounter. */
function both(increments: [method: string, code: string, by?: number][]) {
  const ours = new Registry();
  const theirs = new Registry();
  const labelled = new LabelledCounter({ ...config, registers: [ours] });
  const counter = new Counter({
    ...config,
    labelNames: [...config.labelNames],
    registers: [theirs],
  });
  for (const [method, code, by] of increments) {
    labelled.inc([method, code], by);
    counter.inc({ method, code }, by);
  }
  return { ours, theirs, labelled };
}

describe("LabelledCounter", () => {
  test("is exposed exactly as prom-client's Counter with the same increments", async () => {
    const { ours, theirs } = both([
      ["GetBook", "OK"],
      ["GetBook", "NotFound"],
      ["ListBooks", "OK", 3],
      ["GetBook", "OK"],
      ["GetBook", "OK", 0.5],
    ]);
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('test_calls_total{method="GetBook",code="OK"} 2.5');
    expect(text).toContain('test_calls_total{method="ListBooks",code="OK"} 3');
    expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
  });

  test("never goes down, and starts over on reset", async () => {
    const { ours, labelled } = both([["GetBook", "OK"]]);
    expect(() => labelled.inc(["GetBook", "OK"], -1)).toThrow(RangeError);
    expect(() => labelled.inc(["GetBook", "OK"], Number.NaN)).toThrow(RangeError);
    expect(await ours.metrics()).toContain('test_calls_total{method="GetBook",code="OK"} 1');
    ours.resetMetrics();
    expect(await ours.metrics()).not.toContain("GetBook");
  });
});
