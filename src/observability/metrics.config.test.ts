import { describe, expect, test } from "bun:test";
import { loadConfig } from "../config.ts";
import { configProblems } from "../testing/config.ts";

describe("METRICS, METRICS_TOKEN, METRICS_PORT", () => {
  test("defaults: on, no token, grpc's listener on 9464", () => {
    expect(loadConfig({}).metrics).toEqual({ enabled: true, token: undefined, port: 9464 });
  });

  test("read when set", () => {
    const token = "t".repeat(24);
    expect(loadConfig({ METRICS: "off", METRICS_TOKEN: token, METRICS_PORT: "0" }).metrics).toEqual(
      {
        enabled: false,
        token,
        port: 0,
      },
    );
    expect(loadConfig({ METRICS: "ON" }).metrics.enabled).toBe(true);
  });

  test("bad values are named in the one config error, never the token itself", () => {
    const problems = configProblems({
      METRICS: "maybe",
      METRICS_TOKEN: "short-secret",
      METRICS_PORT: "70000",
    });
    expect(problems).toEqual([
      'METRICS must be on or off (got "maybe")',
      "METRICS_TOKEN must be at least 16 characters long",
      'METRICS_PORT must be an integer from 0 to 65535 (got "70000")',
    ]);
    expect(problems.join(" ")).not.toContain("short-secret");
  });
});
