/**
 * The monitoring files users take as they are: Prometheus' config and its alerting rules pass
 * promtool (the rules' own unit tests included), and every metric the alerts and the Grafana
 * dashboard query is one petbooks exports, so a renamed metric cannot leave a silent panel or an
 * alert that never fires. promtool comes with Debian's `prometheus` package; without it the
 * promtool checks are skipped, saying so.
 */

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { runCommand } from "../scripts/run-command.ts";
import { createMetrics } from "../src/observability/metrics.ts";

const root = import.meta.dir;
const promtool = Bun.which("promtool");
if (!promtool) {
  console.warn("deploy: promtool not found (apt-get install prometheus): its checks are skipped");
}

async function run(args: string[]) {
  const { code, stdout, stderr } = await runCommand([promtool as string, ...args], {
    cwd: join(root, "prometheus"),
  });
  return { code, output: `${stdout}${stderr}` };
}

/** Metric names in PromQL text: identifiers followed by `{`, `[` or `)` that petbooks could export. */
function metricNames(promql: string): string[] {
  const names = promql.match(/\b(?:petbooks|http_server|grpc_server|process|nodejs)_[a-z0-9_]+/g);
  return [...new Set(names ?? [])];
}

/** Every series name the registry exposes, histograms with their _bucket, _sum and _count. */
async function exportedNames(): Promise<Set<string>> {
  const metrics = createMetrics();
  const names = new Set<string>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (metric.type === "histogram") {
      for (const suffix of ["_bucket", "_sum", "_count"]) names.add(`${metric.name}${suffix}`);
    }
  }
  return names;
}

describe.skipIf(!promtool)("promtool", () => {
  test("prometheus.yml and its rule files are valid", async () => {
    const { code, output } = await run(["check", "config", "prometheus.yml"]);
    expect(`${code} ${output}`).toStartWith("0 ");
  }, 30_000);

  test("each alert fires on its own unit test's data (alerts.test.yml)", async () => {
    const { code, output } = await run(["test", "rules", "alerts.test.yml"]);
    expect(`${code} ${output}`).toContain("SUCCESS");
    expect(code).toBe(0);
  }, 30_000);
});

describe("what the alerts and the dashboard query exists", () => {
  test("alerts.yml: every alert has a unit test, and every metric it reads is exported", async () => {
    const rules = Bun.YAML.parse(await Bun.file(join(root, "prometheus/alerts.yml")).text()) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const tests = await Bun.file(join(root, "prometheus/alerts.test.yml")).text();
    const exported = await exportedNames();
    for (const rule of rules.groups.flatMap((g) => g.rules)) {
      expect(`${rule.alert} tested: ${tests.includes(`alertname: ${rule.alert}`)}`).toBe(
        `${rule.alert} tested: true`,
      );
      for (const name of metricNames(rule.expr)) {
        expect(`${rule.alert}: ${name} ${exported.has(name) ? "exported" : "missing"}`).toBe(
          `${rule.alert}: ${name} exported`,
        );
      }
    }
  });

  test("the Grafana dashboard only queries exported metrics", async () => {
    const dashboard = (await Bun.file(join(root, "grafana/dashboards/petbooks.json")).json()) as {
      uid: string;
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    expect(dashboard.uid).toBe("petbooks-overview");
    const exported = await exportedNames();
    let queries = 0;
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        queries += 1;
        for (const name of metricNames(target.expr)) {
          expect(`${panel.title}: ${name} ${exported.has(name) ? "exported" : "missing"}`).toBe(
            `${panel.title}: ${name} exported`,
          );
        }
      }
    }
    expect(queries).toBeGreaterThan(20);
  });
});
