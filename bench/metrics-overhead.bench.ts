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
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type Cleanup, runBench } from "./lib/cleanup.ts";
import { API_KEY } from "./lib/context.ts";
import { connect, dropDatabase, recreateDatabase, seedPets } from "./lib/database.ts";
import { loadAverage } from "./lib/machine.ts";
import { integerOption } from "./lib/options.ts";
import { buildPetbooks, childEnv, freePorts, LOAD_CORE, runChecked } from "./lib/processes.ts";
import { interleaved } from "./lib/rounds.ts";
import { formatRatio, median, pairedRatio, spread } from "./lib/stats.ts";
import { loadServer, type ServerLoad } from "./lib/wrk.ts";
import { startHttp } from "./scenarios/pets.ts";

const DATABASE = "petbooks_bench_metrics";
const PETS = 10_000;
const CONNECTIONS = 64;
const PATH = "/pets?limit=20";
const TARGET_RATIO = 0.97;
const SUBJECTS = ["metrics on", "metrics off"] as const;

interface Options {
  /** Seconds between two scrapes of /metrics during the runs with metrics; 0: none. */
  scrapeEvery: number;
  seconds: number;
  warmup: number;
  rounds: number;
  pool: number;
}

const USAGE =
  "usage: bun bench/metrics-overhead.bench.ts [--duration SECONDS] [--rounds N] [--pool SIZE] [--scrape-every SECONDS]";

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: "string", default: "10" },
      rounds: { type: "string", default: "5" },
      pool: { type: "string", default: "10" },
      "scrape-every": { type: "string", default: "1" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return undefined;
  return {
    seconds: integerOption(values.duration, "duration"),
    warmup: 2,
    rounds: integerOption(values.rounds, "rounds"),
    pool: integerOption(values.pool, "pool"),
    scrapeEvery: integerOption(values["scrape-every"], "scrape-every", 0),
  };
}

const progress = (message: string) => console.error(`· ${message} (load ${loadAverage()})`);

/** Scrapes `url` every `seconds` until stopped, as Prometheus would. */
function scraper(url: string, seconds: number) {
  let running = true;
  let scrapes = 0;
  const loop = (async () => {
    while (running) {
      const res = await fetch(url).catch(() => undefined);
      if (res) {
        await res.text();
        scrapes += 1;
      }
      await Bun.sleep(seconds * 1000);
    }
  })();
  return async () => {
    running = false;
    await loop;
    return scrapes;
  };
}

async function run(options: Options, cleanup: Cleanup) {
  const dir = mkdtempSync(join(tmpdir(), "petbooks-bench-metrics-"));
  cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
  progress("building petbooks");
  const binary = await buildPetbooks(dir);
  const databaseUrl = await recreateDatabase(DATABASE);
  cleanup.defer(() => dropDatabase(DATABASE));
  await runChecked([binary, "migrate"], childEnv({ DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" }));
  const sql = connect(databaseUrl);
  try {
    await seedPets(sql, PETS);
  } finally {
    await sql.end({ timeout: 5 });
  }

  const ctx = { dir, cleanup, options: { pool: options.pool } };
  const [onPort, offPort] = (await freePorts(2)) as [number, number];
  const servers = {
    "metrics on": await startHttp(ctx, "metrics on", [binary, "serve"], onPort, {
      DATABASE_URL: databaseUrl,
      DATA_DIR: join(dir, "data-on"),
    }),
    "metrics off": await startHttp(ctx, "metrics off", [binary, "serve"], offPort, {
      DATABASE_URL: databaseUrl,
      DATA_DIR: join(dir, "data-off"),
      METRICS: "off",
    }),
  };
  const metricsUrl = `${servers["metrics on"].baseUrl}/metrics`;
  if ((await fetch(metricsUrl)).status !== 200) throw new Error("no /metrics with metrics on");
  if ((await fetch(`${servers["metrics off"].baseUrl}/metrics`)).status !== 404) {
    throw new Error("/metrics answers with METRICS=off");
  }

  const runs = await interleaved(SUBJECTS, options.rounds, async (subject, round) => {
    progress(`round ${round}: ${subject}`);
    const stopScraping =
      subject === "metrics on" && options.scrapeEvery > 0
        ? scraper(metricsUrl, options.scrapeEvery)
        : undefined;
    const result: ServerLoad = await loadServer(servers[subject], PATH, {
      seconds: options.seconds,
      warmup: options.warmup,
      connections: CONNECTIONS,
      core: LOAD_CORE,
      headers: { "x-api-key": API_KEY },
    });
    await stopScraping?.();
    if (result.failures > 0) throw new Error(`${subject}: ${result.failures} failed requests`);
    return result;
  });

  const rps = (s: (typeof SUBJECTS)[number]) => runs[s].map((r) => r.result.rps);
  const ratio = pairedRatio(rps("metrics on"), rps("metrics off"));
  console.log(
    `\nGET ${PATH}, ${PETS} pets on PostgreSQL, ${CONNECTIONS} connections, ` +
      `${options.rounds} rounds of ${options.seconds} s\n`,
  );
  console.log("| round | subject | load at start | req/s | p50 ms | p99 ms | CPU µs/req |");
  console.log("| ---: | --- | --- | ---: | ---: | ---: | ---: |");
  for (const subject of SUBJECTS) {
    for (const { round, load, result } of runs[subject]) {
      console.log(
        `| ${round} | ${subject} | ${load} | ${result.rps.toFixed(0)} | ${result.p50Ms.toFixed(2)} | ${result.p99Ms.toFixed(2)} | ${result.cpuUs.toFixed(0)} |`,
      );
    }
  }
  for (const subject of SUBJECTS) {
    const values = rps(subject);
    console.log(
      `\n${subject}: median ${median(values).toFixed(0)} req/s (${spread(values, (n) => n.toFixed(0))})`,
    );
  }
  const cpu = (s: (typeof SUBJECTS)[number]) => runs[s].map((r) => r.result.cpuUs);
  // Less sensitive to other jobs than throughput: what the server itself spent per request.
  console.log(
    `server CPU per request with metrics / without: ${formatRatio(pairedRatio(cpu("metrics on"), cpu("metrics off")), 3)}`,
  );
  const met = ratio.median >= TARGET_RATIO;
  console.log(
    `\nthroughput with metrics / without: ${formatRatio(ratio, 3)} (median of rounds, min-max); ` +
      `target >= ${TARGET_RATIO}: ${met ? "met" : "missed"}`,
  );
  console.log(`load average at the end: ${loadAverage()}`);
}

await runBench({ usage: USAGE, parseOptions, run, beforeCleanup: () => progress("cleaning up") });
