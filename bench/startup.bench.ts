/**
 * How long petbooks takes to become ready on the embedded defaults, and how long the test suite
 * and CI take: the figures of the README's quick start (the table after the executable).
 *
 * - first start: `./petbooks serve` on a new DATA_DIR until /readyz answers 200, against a
 *   restart on the same DATA_DIR; fresh and restart alternate (F R R F ...), medians and spread.
 * - with --legs: the README's test command on the embedded database and on PostgreSQL, one
 *   after the other in alternating order, each timed whole.
 * - with --ci: `CI=true bash .ci/run` on a fresh clone of HEAD, timed whole.
 */

import { rmSync } from "node:fs";
import { join } from "node:path";
import { runCommand } from "../scripts/run-command.ts";
import { runBench } from "./lib/cleanup.ts";
import { openWorkspace, type Workspace } from "./lib/context.ts";
import { dropDatabase, recreateDatabase } from "./lib/database.ts";
import { loadAverage } from "./lib/machine.ts";
import { childEnv, freePorts, ROOT, runChecked, startServer } from "./lib/processes.ts";
import { table } from "./lib/report.ts";
import { interleaved } from "./lib/rounds.ts";
import { petbooksEnv } from "./lib/servers.ts";
import { median, spread } from "./lib/stats.ts";

/** Targets of issue 10: a first start within 2x a restart and under 5 s; the embedded leg at most 1.5x PostgreSQL's. */
const TARGETS = { freshOverRestart: 2, freshSeconds: 5, embeddedOverPostgres: 1.5 };
const fmt = (n: number) => n.toFixed(2);

/** Seconds from spawning `serve` (not pinned) until /readyz answers 200; it is then stopped. */
async function timeToReady(binary: string, dataDir: string): Promise<number> {
  const [port] = (await freePorts(1)) as [number];
  const started = performance.now();
  const server = await startServer({
    name: "serve",
    cmd: [binary, "serve"],
    env: petbooksEnv({ DATA_DIR: dataDir, PORT: String(port) }),
    port,
    core: null,
    logFile: "/dev/null",
    pollMs: 20,
    readyTimeoutMs: 300_000,
  });
  const seconds = (performance.now() - started) / 1000;
  await server.stop();
  return seconds;
}

async function timeCommand(cmd: string[], env: Record<string, string>, cwd = ROOT) {
  const started = performance.now();
  const { code, stdout, stderr } = await runCommand(cmd, { cwd, env });
  const seconds = (performance.now() - started) / 1000;
  const output = `${stdout}${stderr}`;
  const summary = output.match(/^ci: .*$/m)?.[0] ?? output.match(/^Ran .*$/m)?.[0];
  return { seconds, code, summary: summary ?? "(no summary line)" };
}

/** First starts against restarts, interleaved; true when the targets are met. */
async function startTimes(ws: Workspace, rounds: number): Promise<boolean> {
  // One data directory for every restart, made before timing starts.
  const existing = join(ws.dir, "data-existing");
  await timeToReady(ws.binary, existing);
  const dataDir = (round: number) => join(ws.dir, `data-${round}`);
  const runs = await interleaved(
    ["fresh", "restart"] as const,
    rounds,
    (subject, round) => timeToReady(ws.binary, subject === "fresh" ? dataDir(round) : existing),
    (round) => {
      rmSync(dataDir(round - 1), { recursive: true, force: true });
      return true;
    },
  );
  const [fresh, restart] = [runs.fresh.map((r) => r.result), runs.restart.map((r) => r.result)];
  const ratios = fresh.map((f, i) => f / (restart[i] as number));
  const freshMedian = median(fresh);
  const ratioMedian = median(ratios);
  console.log(
    `\nEmbedded start until /readyz (${rounds} rounds, load average ${loadAverage()})\n${table(
      ["", "median s", "min-max s"],
      [
        ["first start (new DATA_DIR)", fmt(freshMedian), spread(fresh, fmt)],
        ["restart (same DATA_DIR)", fmt(median(restart)), spread(restart, fmt)],
        ["ratio first/restart", fmt(ratioMedian), spread(ratios, fmt)],
      ],
    )}`,
  );
  const met = freshMedian < TARGETS.freshSeconds && ratioMedian <= TARGETS.freshOverRestart;
  console.log(
    `target: first start under ${TARGETS.freshSeconds} s and within ${TARGETS.freshOverRestart}x a restart: ${met ? "met" : "MISSED"}`,
  );
  return met;
}

/** The test command on embedded and on PostgreSQL (E P P E); true when the target is met. */
async function testLegs(ws: Workspace): Promise<boolean> {
  const database = `petbooks_bench_startup_${process.pid}`;
  const postgres = {
    DATABASE_URL: await recreateDatabase(database),
    REDIS_URL: "redis://127.0.0.1:6379",
  };
  ws.cleanup.defer(() => dropDatabase(database));
  const legs: Record<string, number> = {};
  let passed = true;
  for (const name of ["embedded", "postgres", "postgres", "embedded"]) {
    const result = await timeCommand(
      ["bun", "run", "test"],
      childEnv(name === "postgres" ? postgres : {}),
    );
    console.log(
      `${name} leg: ${fmt(result.seconds)} s, exit ${result.code}, ${result.summary}, load ${loadAverage()}`,
    );
    if (result.code !== 0) passed = false;
    legs[name] = (legs[name] ?? 0) + result.seconds / 2;
  }
  const ratio = (legs.embedded ?? 0) / (legs.postgres ?? 1);
  const ok = ratio <= TARGETS.embeddedOverPostgres;
  console.log(
    `\nTest legs (mean of 2 each): embedded ${fmt(legs.embedded ?? 0)} s, PostgreSQL ${fmt(legs.postgres ?? 0)} s, ratio ${fmt(ratio)}; target at most ${TARGETS.embeddedOverPostgres}: ${ok ? "met" : "MISSED"}`,
  );
  return passed && ok;
}

/** CI on a fresh clone of HEAD; true when it passed. */
async function ci(ws: Workspace): Promise<boolean> {
  const clone = join(ws.dir, "clone");
  await runChecked(["git", "clone", "-q", ROOT, clone]);
  const result = await timeCommand(["bash", ".ci/run"], childEnv({ CI: "true" }), clone);
  console.log(
    `\nCI (CI=true bash .ci/run on a fresh clone): ${fmt(result.seconds)} s, exit ${result.code}, ${result.summary}, load ${loadAverage()}`,
  );
  return result.code === 0;
}

await runBench({
  script: "bench/startup.bench.ts",
  options: {
    rounds: { int: 6, help: "fresh/restart pairs" },
    legs: { flag: true, help: "also time the README's test command on embedded and on PostgreSQL" },
    ci: { flag: true, help: "also time CI=true bash .ci/run on a fresh clone of HEAD" },
  },
  run: async (options, cleanup) => {
    const ws = await openWorkspace(cleanup, { name: "startup-bench" });
    console.log(`load average before: ${loadAverage()}`);
    let met = await startTimes(ws, options.rounds);
    if (options.legs) met = (await testLegs(ws)) && met;
    if (options.ci) met = (await ci(ws)) && met;
    return met ? 0 : 1;
  },
});
