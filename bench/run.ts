/**
 * `bun run bench`: every comparison of the performance report, in 18 to 19 minutes on a 2-core
 * machine, written as one Markdown report to bench/results/ (and, with --write-docs, to
 * docs/performance.md).
 *
 * Each figure is a ratio between petbooks and a ceiling that does the same work (the same SQL,
 * the same bytes out), measured in interleaved rounds (A B, B A, ...) on the same machine at the
 * same time; the report gives the median and the min-max of the rounds, never the best one, with
 * the load average at the start of every run. A target is met only when the median meets it.
 *
 * Needs PostgreSQL at 127.0.0.1:5432 (or BENCH_POSTGRES_URL), wrk, h2load, pgbench, psql and
 * taskset. Creates and finally drops its own database, petbooks_bench_<process id>, so that two
 * runs on one machine keep apart; touches no other.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Cleanup, runBench } from "./lib/cleanup.ts";
import { type Context, openWorkspace, POOL_OPTION, progress } from "./lib/context.ts";
import { petCounts, seedBooks, seedPets } from "./lib/database.ts";
import { cpuTimes, loadAverage, machineFacts, stolenShare } from "./lib/machine.ts";
import { integerOption, type Options } from "./lib/options.ts";
import { ALLOCATOR_ENV, ROOT, runChecked } from "./lib/processes.ts";
import { holds, markdownTable, Report } from "./lib/report.ts";
import { booksScenario } from "./scenarios/books.ts";
import { exportScenario } from "./scenarios/export.ts";
import { grpcScenario } from "./scenarios/grpc.ts";
import { petsScenario, seedEmbedded } from "./scenarios/pets.ts";

const PETS = 100_000;
const BOOKS = 100_000;
const PARTS = ["pets", "embedded", "books", "grpc", "export"] as const;

const OPTIONS = {
  rounds: { int: 5, help: "interleaved rounds per comparison" },
  duration: { int: 5, help: "seconds per measured run, after --warmup" },
  warmup: { int: 1, min: 0, help: "seconds of warm-up before each measured run" },
  pool: POOL_OPTION,
  pgbenchClients: {
    text: "4,6",
    help: "pgbench clients for PostgreSQL alone: each tried before the rounds, the fastest run in every round",
  },
  only: { choices: PARTS, list: true, help: `some of ${PARTS.join(",")} (default: all)` },
  skip1m: { flag: true, help: "leave out the export over 1,000,000 pets" },
  writeDocs: { flag: true, help: "also write docs/performance.md from the report" },
} as const;

const DOCS_INTRO = `# Performance

This page is generated: \`bun run bench -- --write-docs\` writes it from the report of its run
(bench/run.ts); do not edit it by hand. Each figure compares petbooks with a ceiling that does the
same work (the same SQL statements, the same bytes out) or with PostgreSQL alone, measured in
interleaved rounds on the same machine at the same time. Ratios are the median of the rounds
with their min-max; a target counts as met only when the median meets it. The machine is shared
(other jobs ran meanwhile), which is why the load average is recorded next to every run; on a
virtual machine its host can also take CPU time from it (steal), which the machine table gives for
the whole run.

Where the server's CPU goes on a request: [profiles/](profiles/), written by
\`bun bench/profile.ts --path <path> --write-docs\` (\`bun --cpu-prof\` under wrk, summed by part
of the program and by function, with a flame graph): [GET /pets](profiles/get-pets.md),
[GET /books](profiles/get-books.md), with \`--embedded\`
[GET /pets on PGlite](profiles/get-pets-embedded.md), and with \`--grpc GetBook\` (under h2load)
[gRPC GetBook](profiles/grpc-getbook.md).

`;

async function run(o: Options<typeof OPTIONS>, cleanup: Cleanup): Promise<number> {
  const options = {
    rounds: o.rounds,
    seconds: o.duration,
    warmup: o.warmup,
    pool: o.pool,
    pgbenchClients: o.pgbenchClients
      .split(",")
      .map((clients) => integerOption(clients, "pgbench-clients")),
    skip1m: o.skip1m,
  };
  const parts = new Set(o.only?.split(",") ?? PARTS);
  const started = new Date();
  const loadAtStart = loadAverage();
  const cpuAtStart = cpuTimes();
  const ws = await openWorkspace(cleanup, {
    name: "bench",
    database: `petbooks_bench_${process.pid}`,
    pool: o.pool,
  });
  progress(`seeding ${PETS} pets and ${BOOKS} books`);
  await seedPets(ws.sql, PETS);
  await seedBooks(ws.sql, BOOKS);
  const counts = await petCounts(ws.sql);

  const report = new Report();
  const ctx: Context = { ...ws, options, report };
  let embeddedDir: string | undefined;
  if (parts.has("embedded")) {
    embeddedDir = join(ws.dir, "data-embedded");
    progress(`seeding the embedded database with ${PETS} pets`);
    await seedEmbedded(ctx, embeddedDir, PETS);
  }
  if (parts.has("pets") || parts.has("embedded")) await petsScenario(ctx, embeddedDir);
  if (parts.has("books")) await booksScenario(ctx);
  if (parts.has("grpc")) await grpcScenario(ctx);
  if (parts.has("export")) await exportScenario(ctx, ws.sql);

  const finished = new Date();
  const markdown = [
    `# petbooks performance report, ${started.toISOString().slice(0, 16).replace("T", " ")} UTC`,
    "",
    `\`bun run bench${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(" ")}` : ""}\`: ` +
      `${options.rounds} interleaved rounds per comparison, ${options.warmup} s warm-up + ` +
      `${options.seconds} s per run; ${((finished.getTime() - started.getTime()) / 60_000).toFixed(1)} ` +
      `minutes in all. Data: ${counts.pets.toLocaleString("en-US")} pets ` +
      `(${((100 * counts.withPhotos) / counts.pets).toFixed(1)}% with photos, ${counts.photos.toLocaleString("en-US")} photos) ` +
      `and ${BOOKS.toLocaleString("en-US")} books. petbooks' servers and the ceilings hold ` +
      `\`DATABASE_POOL_SIZE=${options.pool}\` connections each ` +
      "([docs/operations.md](operations.md#database-connections)). " +
      "petbooks (servers and exports) and the ceilings' servers run " +
      `with ${Object.entries(ALLOCATOR_ENV)
        .map(([name, value]) => `\`${name}=${value}\``)
        .join(" ")}, as the Docker image sets it ` +
      "([docs/operations.md](operations.md#memory-allocator)). " +
      "While one subject is measured, every other server of its comparison is paused (SIGSTOP), " +
      "so that none of them does its idle work (timers, garbage collection, a relay's polls) " +
      "during another's run (bench/lib/processes.ts, whilePaused).",
    "",
    markdownTable(
      ["machine", ""],
      [
        ...machineFacts(),
        ["load average (1, 5, 15 min) at start", loadAtStart],
        ["load average at the end", loadAverage()],
        [
          "CPU time taken by the host meanwhile (steal, /proc/stat)",
          stolenShare(cpuAtStart, cpuTimes()),
        ],
      ],
    ),
    "",
    "## Targets",
    "",
    report.summary(),
    "",
    ...report.sections.flatMap((s) => [s, ""]),
  ].join("\n");

  const resultsDir = join(ROOT, "bench", "results");
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `report-${started.toISOString().replaceAll(/[:.]/g, "-")}.md`);
  writeFileSync(file, markdown);
  writeFileSync(join(resultsDir, "latest.md"), markdown);
  console.log(markdown);
  progress(`report written to ${file} and bench/results/latest.md`);
  if (o.writeDocs) {
    mkdirSync(join(ROOT, "docs"), { recursive: true });
    const demoted = markdown.replaceAll(/^(#+) /gm, "#$1 ");
    writeFileSync(join(ROOT, "docs", "performance.md"), DOCS_INTRO + demoted);
    // The tables are already laid out as Biome does; this catches anything else it would change.
    await runChecked(["bunx", "biome", "format", "--write", "docs/performance.md"]);
    progress("docs/performance.md written");
  }
  // A target that could not be judged (a failed run, no ceiling) is not met either.
  return report.verdicts.every(holds) ? 0 : 1;
}

await runBench({ script: "bench/run.ts   (bun run bench)", options: OPTIONS, run });
