/**
 * What the metrics cost: GET /pets?limit=20 against two `petbooks serve` on the same PostgreSQL
 * database (10,000 pets), one with metrics (the default) and one with METRICS=off, in
 * interleaved rounds (on off, off on, ...) of the same load. The figure is the median of the
 * per-round throughput ratios (on / off) with its min-max; the target is at most 3%
 * lower throughput, a ratio of at least 0.97. /metrics is scraped every --scrape-every seconds
 * (default 1, far more often than a Prometheus would; 0: never) during the runs with metrics.
 *
 *   bun bench/metrics-overhead.bench.ts [--duration 10] [--rounds 5] [--pool 10] [--scrape-every 1]
 *
 * Servers on core 0, wrk on core 1. Needs PostgreSQL at 127.0.0.1:5432 (or BENCH_POSTGRES_URL),
 * wrk and taskset. Creates and finally drops the database petbooks_bench_metrics.
 */
import { join } from "node:path";
import { runBench } from "./lib/cleanup.ts";
import { API_KEY, openWorkspace, progress } from "./lib/context.ts";
import { seedPets } from "./lib/database.ts";
import { loadAverage } from "./lib/machine.ts";
import { freePorts, LOAD_CORE } from "./lib/processes.ts";
import { figures, interleaved, ratioOf } from "./lib/rounds.ts";
import { startServe } from "./lib/servers.ts";
import { formatRatio, median, spread } from "./lib/stats.ts";
import { loadServer } from "./lib/wrk.ts";

const PETS = 10_000;
const CONNECTIONS = 64;
const PATH = "/pets?limit=20";
const TARGET_RATIO = 0.97;
const SUBJECTS = ["metrics on", "metrics off"] as const;

/** Scrapes `url` every `seconds` until stopped, as Prometheus would. */
function scraper(url: string, seconds: number) {
  let running = true;
  const loop = (async () => {
    while (running) {
      await fetch(url).then(
        (res) => res.text(),
        () => undefined,
      );
      await Bun.sleep(seconds * 1000);
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

await runBench({
  script: "bench/metrics-overhead.bench.ts",
  options: {
    duration: { int: 10, help: "seconds per measured run (after 2 s of warm-up)" },
    rounds: { int: 5, help: "interleaved rounds" },
    pool: { int: 10, help: "DATABASE_POOL_SIZE of both servers" },
    scrapeEvery: { int: 1, min: 0, help: "seconds between scrapes of /metrics, 0: none" },
  },
  run: async (options, cleanup) => {
    const ws = await openWorkspace(cleanup, {
      name: "bench-metrics",
      database: "petbooks_bench_metrics",
      pool: options.pool,
    });
    await seedPets(ws.sql, PETS);
    const [onPort, offPort] = (await freePorts(2)) as [number, number];
    const env = (name: string, extra = {}) => ({
      DATABASE_URL: ws.databaseUrl,
      DATA_DIR: join(ws.dir, name),
      ...extra,
    });
    const servers = {
      "metrics on": await startServe(ws, "metrics on", onPort, env("data-on")),
      "metrics off": await startServe(
        ws,
        "metrics off",
        offPort,
        env("data-off", { METRICS: "off" }),
      ),
    };
    const metricsUrl = `${servers["metrics on"].baseUrl}/metrics`;
    if ((await fetch(metricsUrl)).status !== 200) throw new Error("no /metrics with metrics on");
    if ((await fetch(`${servers["metrics off"].baseUrl}/metrics`)).status !== 404) {
      throw new Error("/metrics answers with METRICS=off");
    }

    const runs = await interleaved(SUBJECTS, options.rounds, async (subject, round) => {
      progress(`round ${round}: ${subject}`);
      const scraping = subject === "metrics on" && options.scrapeEvery > 0;
      const stopScraping = scraping ? scraper(metricsUrl, options.scrapeEvery) : undefined;
      const result = await loadServer(servers[subject], PATH, {
        seconds: options.duration,
        warmup: 2,
        connections: CONNECTIONS,
        core: LOAD_CORE,
        headers: { "x-api-key": API_KEY },
      });
      await stopScraping?.();
      if (result.failures > 0) throw new Error(`${subject}: ${result.failures} failed requests`);
      return result;
    });

    const [on, off] = [runs["metrics on"], runs["metrics off"]];
    const ratio = ratioOf(on, off, (r) => r.rps);
    const out = [
      `\nGET ${PATH}, ${PETS} pets on PostgreSQL, ${CONNECTIONS} connections, ${options.rounds} rounds of ${options.duration} s\n`,
      "| round | subject | load at start | req/s | p50 ms | p99 ms | CPU µs/req |",
      "| ---: | --- | --- | ---: | ---: | ---: | ---: |",
      ...SUBJECTS.flatMap((subject) =>
        runs[subject].map(
          ({ round, load, result: r }) =>
            `| ${round} | ${subject} | ${load} | ${r.rps.toFixed(0)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.cpuUs.toFixed(0)} |`,
        ),
      ),
      ...SUBJECTS.map((subject) => {
        const rps = figures(runs[subject], (r) => r.rps);
        return `\n${subject}: median ${median(rps).toFixed(0)} req/s (${spread(rps, (n) => n.toFixed(0))})`;
      }),
      // Less sensitive to other jobs than throughput: what the server itself spent per request.
      `server CPU per request with metrics / without: ${formatRatio(
        ratioOf(on, off, (r) => r.cpuUs),
        undefined,
        3,
      )}`,
      `\nthroughput with metrics / without: ${formatRatio(ratio, undefined, 3)} (median of rounds, min-max); ` +
        `target >= ${TARGET_RATIO}: ${ratio.median >= TARGET_RATIO ? "met" : "missed"}`,
      `load average at the end: ${loadAverage()}`,
    ];
    console.log(out.join("\n"));
  },
});
