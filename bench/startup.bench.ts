/**
 * How long petbooks takes to become ready on the embedded defaults, and how long the test suite
 * and CI take: the figures of the README's "Start-up and test times".
 *
 * - first start: `./petbooks serve` on a new DATA_DIR until /readyz answers 200, against a
 *   restart on the same DATA_DIR; fresh and restart alternate (F R R F ...), medians and spread.
 * - with --legs: the README's test command on the embedded database and on PostgreSQL, one
 *   after the other in alternating order, each timed whole.
 * - with --ci: `CI=true bash .ci/run` on a fresh clone of HEAD, timed whole.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { runBench } from "./lib/cleanup.ts";
import { databaseUrl } from "./lib/database.ts";
import { integerOption } from "./lib/options.ts";
import {
  childEnv,
  ensureBinary,
  freePorts,
  ROOT,
  runChecked,
  stageBinary,
} from "./lib/processes.ts";
import { table } from "./lib/report.ts";
import { median, spread } from "./lib/stats.ts";

const USAGE = `usage: bun bench/startup.bench.ts [--rounds N] [--legs] [--ci]
  --rounds N  fresh/restart pairs (default 6)
  --legs      also time the README's test command on embedded and on PostgreSQL
  --ci        also time CI=true bash .ci/run on a fresh clone of HEAD`;

interface Options {
  rounds: number;
  legs: boolean;
  ci: boolean;
}

const READY_DEADLINE_MS = 300_000;
/** Targets of issue 10: a first start within 2x a restart and under 5 s; the embedded leg at most 1.5x PostgreSQL's. */
const TARGETS = { freshOverRestart: 2, freshSeconds: 5, embeddedOverPostgres: 1.5 };

function parseOptions(argv: string[]): Options | undefined {
  const options: Options = { rounds: 6, legs: false, ci: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help") return undefined;
    else if (arg === "--rounds") options.rounds = integerOption(argv[++i] ?? "", "--rounds");
    else if (arg === "--legs") options.legs = true;
    else if (arg === "--ci") options.ci = true;
    else throw new Error(`unknown option ${arg}`);
  }
  return options;
}

/** Seconds from spawning `serve` until /readyz answers 200; the process is then stopped. */
async function timeToReady(binary: string, dataDir: string): Promise<number> {
  const [port] = await freePorts(1);
  const started = performance.now();
  const proc = Bun.spawn([binary, "serve"], {
    env: childEnv({
      API_KEY: "bench-api-key-0123456789",
      JWT_SECRET: "bench-jwt-secret-0123456789-0123456789-abcdef",
      DATA_DIR: dataDir,
      HOST: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: "warn",
    }),
    stdout: "ignore",
    stderr: "ignore",
  });
  try {
    while (performance.now() - started < READY_DEADLINE_MS) {
      if (proc.exitCode !== null) throw new Error(`serve exited with ${proc.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`)
        .then((r) => r.status === 200)
        .catch(() => false);
      if (ok) return (performance.now() - started) / 1000;
      await Bun.sleep(20);
    }
    throw new Error("serve did not become ready");
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
  }
}

async function timeCommand(cmd: string[], env: Record<string, string>, cwd = ROOT) {
  const started = performance.now();
  const proc = Bun.spawn(cmd, { cwd, env, stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  const seconds = (performance.now() - started) / 1000;
  const summary = `${out}${err}`.match(/^ci: .*$/m)?.[0] ?? `${out}${err}`.match(/^Ran .*$/m)?.[0];
  return { seconds, code, summary: summary ?? "(no summary line)" };
}

const fmt = (n: number) => n.toFixed(2);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");

async function run(options: Options, cleanup: { defer(step: () => unknown): void }) {
  if (await ensureBinary()) console.log("built ./petbooks");
  const work = mkdtempSync(join(tmpdir(), "petbooks-startup-bench-"));
  cleanup.defer(() => rmSync(work, { recursive: true, force: true }));
  const binary = stageBinary(work);
  console.log(`load average before: ${load()}`);

  // One data directory for every restart, made before timing starts.
  const existing = join(work, "data-existing");
  await timeToReady(binary, existing);
  const fresh: number[] = [];
  const restart: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    const dataDir = join(work, `data-${round}`);
    // Interleaved F R, R F, ... so a change of load does not favour one side.
    if (round % 2 === 0) {
      fresh.push(await timeToReady(binary, dataDir));
      restart.push(await timeToReady(binary, existing));
    } else {
      restart.push(await timeToReady(binary, existing));
      fresh.push(await timeToReady(binary, dataDir));
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
  const ratios = fresh.map((f, i) => f / (restart[i] as number));
  const freshMedian = median(fresh);
  const ratioMedian = median(ratios);
  console.log(
    `\nEmbedded start until /readyz (${options.rounds} rounds, load average ${load()})\n${table(
      ["", "median s", "min-max s"],
      [
        ["first start (new DATA_DIR)", fmt(freshMedian), spread(fresh, fmt)],
        ["restart (same DATA_DIR)", fmt(median(restart)), spread(restart, fmt)],
        ["ratio first/restart", fmt(ratioMedian), spread(ratios, fmt)],
      ],
    )}`,
  );
  let met = freshMedian < TARGETS.freshSeconds && ratioMedian <= TARGETS.freshOverRestart;
  console.log(
    `target: first start under ${TARGETS.freshSeconds} s and within ${TARGETS.freshOverRestart}x a restart: ${met ? "met" : "MISSED"}`,
  );

  if (options.legs) {
    const base = childEnv({});
    const ciDb = `petbooks_startup_bench_${process.pid}`;
    await runChecked([
      "psql",
      "-h",
      "127.0.0.1",
      "-U",
      "postgres",
      "-qc",
      `create database "${ciDb}"`,
    ]);
    cleanup.defer(() =>
      runChecked([
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-qc",
        `drop database if exists "${ciDb}" with (force)`,
      ]),
    );
    const postgresEnv = {
      ...base,
      DATABASE_URL: databaseUrl(ciDb),
      REDIS_URL: "redis://127.0.0.1:6379",
    };
    const legs: Record<string, number> = {};
    for (const name of ["embedded", "postgres", "postgres", "embedded"]) {
      const result = await timeCommand(
        ["bun", "run", "test"],
        name === "postgres" ? postgresEnv : base,
      );
      console.log(
        `${name} leg: ${fmt(result.seconds)} s, exit ${result.code}, ${result.summary}, load ${load()}`,
      );
      if (result.code !== 0) met = false;
      legs[name] = (legs[name] ?? 0) + result.seconds / 2;
    }
    const ratio = (legs.embedded ?? 0) / (legs.postgres ?? 1);
    const ok = ratio <= TARGETS.embeddedOverPostgres;
    met &&= ok;
    console.log(
      `\nTest legs (mean of 2 each): embedded ${fmt(legs.embedded ?? 0)} s, PostgreSQL ${fmt(legs.postgres ?? 0)} s, ratio ${fmt(ratio)}; target at most ${TARGETS.embeddedOverPostgres}: ${ok ? "met" : "MISSED"}`,
    );
  }

  if (options.ci) {
    const clone = join(work, "clone");
    await runChecked(["git", "clone", "-q", ROOT, clone]);
    const result = await timeCommand(["bash", ".ci/run"], { ...childEnv({}), CI: "true" }, clone);
    console.log(
      `\nCI (CI=true bash .ci/run on a fresh clone): ${fmt(result.seconds)} s, exit ${result.code}, ${result.summary}, load ${load()}`,
    );
    if (result.code !== 0) met = false;
  }
  return met ? 0 : 1;
}

await runBench({ usage: USAGE, parseOptions, run });
