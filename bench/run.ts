/**
 * `bun run bench`: every comparison of the performance report, in about 15 minutes, written as one
 * Markdown report to bench/results/ (and, with --write-docs, to docs/performance.md).
 *
 * Each figure is a ratio between petbooks and a ceiling that does the same work (the same SQL,
 * the same bytes out), measured in interleaved rounds (A B, B A, ...) on the same machine at the
 * same time; the report gives the median and the min-max of the rounds, never the best one, with
 * the load average at the start of every run. A target is met only when the median meets it.
 *
 * Needs PostgreSQL at 127.0.0.1:5432 (or BENCH_POSTGRES_URL), wrk, h2load, pgbench, psql and
 * taskset. Creates and finally drops the database petbooks_bench; touches no other.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type Cleanup, runBench } from "./lib/cleanup.ts";
import { type BenchOptions, type Context, progress } from "./lib/context.ts";
import {
  connect,
  dropDatabase,
  petCounts,
  recreateDatabase,
  seedBooks,
  seedPets,
} from "./lib/database.ts";
import { loadAverage, machineFacts } from "./lib/machine.ts";
import { integerOption } from "./lib/options.ts";
import { buildPetbooks, childEnv, ROOT, runChecked } from "./lib/processes.ts";
import { markdownTable, Report } from "./lib/report.ts";
import { booksScenario } from "./scenarios/books.ts";
import { exportScenario } from "./scenarios/export.ts";
import { grpcScenario } from "./scenarios/grpc.ts";
import { petsScenario, seedEmbedded } from "./scenarios/pets.ts";

const DATABASE = "petbooks_bench";
const PETS = 100_000;
const BOOKS = 100_000;
const PARTS = ["pets", "embedded", "books", "grpc", "export"] as const;
type Part = (typeof PARTS)[number];

const USAGE = `usage: bun bench/run.ts [options]   (bun run bench)
  --rounds N      interleaved rounds per comparison (default 3)
  --duration S    seconds per measured run (default 5), after --warmup S (default 1)
  --pool N        database pool of petbooks and the ceilings, pgbench clients (default 10)
  --only LIST     some of ${PARTS.join(",")} (default: all)
  --skip-1m       leave out the export over 1,000,000 pets
  --write-docs    also write docs/performance.md from the report`;

interface Options extends BenchOptions {
  parts: Set<Part>;
  writeDocs: boolean;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: "string", default: "3" },
      duration: { type: "string", default: "5" },
      warmup: { type: "string", default: "1" },
      pool: { type: "string", default: "10" },
      only: { type: "string" },
      "skip-1m": { type: "boolean", default: false },
      "write-docs": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return undefined;
  const parts = values.only ? values.only.split(",") : [...PARTS];
  const unknown = parts.filter((p) => !PARTS.includes(p as Part));
  if (unknown.length > 0) throw new Error(`--only: unknown part ${unknown.join(", ")}`);
  return {
    rounds: integerOption(values.rounds, "rounds"),
    seconds: integerOption(values.duration, "duration"),
    warmup: integerOption(values.warmup, "warmup", 0),
    pool: integerOption(values.pool, "pool"),
    skip1m: values["skip-1m"],
    parts: new Set(parts as Part[]),
    writeDocs: values["write-docs"],
  };
}

const DOCS_INTRO = `# Performance

This page is generated: \`bun run bench -- --write-docs\` writes it from the report of its run
(bench/run.ts); do not edit it by hand. Each figure compares petbooks with a ceiling that does the
same work (the same SQL statements, the same bytes out) or with PostgreSQL alone, measured in
interleaved rounds on the same machine at the same time. Ratios are the median of the rounds
with their min-max; a target counts as met only when the median meets it. The machine is shared
(other jobs ran meanwhile), which is why the load average is recorded next to every run.

`;

async function run(options: Options, cleanup: Cleanup): Promise<number> {
  const started = new Date();
  const loadAtStart = loadAverage();
  const dir = mkdtempSync(join(tmpdir(), "petbooks-bench-"));
  cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
  progress("building petbooks from the current sources (scripts/build.ts)");
  const binary = await buildPetbooks(dir);

  const databaseUrl = await recreateDatabase(DATABASE);
  cleanup.defer(() => dropDatabase(DATABASE));
  await runChecked([binary, "migrate"], childEnv({ DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" }));
  const sql = connect(databaseUrl);
  cleanup.defer(() => sql.end({ timeout: 5 }));
  progress(`seeding ${PETS} pets and ${BOOKS} books`);
  await seedPets(sql, PETS);
  await seedBooks(sql, BOOKS);
  const counts = await petCounts(sql);

  const report = new Report();
  const ctx: Context = { options, dir, binary, databaseUrl, report, cleanup };
  const wants = (part: Part) => options.parts.has(part);
  let embeddedDir: string | undefined;
  if (wants("embedded")) {
    embeddedDir = join(dir, "data-embedded");
    progress(`seeding the embedded database with ${PETS} pets`);
    await seedEmbedded(ctx, embeddedDir, PETS);
  }
  if (wants("pets") || wants("embedded")) await petsScenario(ctx, embeddedDir);
  if (wants("books")) await booksScenario(ctx);
  if (wants("grpc")) await grpcScenario(ctx);
  if (wants("export")) await exportScenario(ctx, sql);

  const finished = new Date();
  const markdown = [
    `# petbooks performance report, ${started.toISOString().slice(0, 16).replace("T", " ")} UTC`,
    "",
    `\`bun run bench${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(" ")}` : ""}\`: ` +
      `${options.rounds} interleaved rounds per comparison, ${options.warmup} s warm-up + ` +
      `${options.seconds} s per run; ${((finished.getTime() - started.getTime()) / 60_000).toFixed(1)} ` +
      `minutes in all. Data: ${counts.pets.toLocaleString("en-US")} pets ` +
      `(${((100 * counts.withPhotos) / counts.pets).toFixed(1)}% with photos, ${counts.photos.toLocaleString("en-US")} photos) ` +
      `and ${BOOKS.toLocaleString("en-US")} books.`,
    "",
    markdownTable(
      ["machine", ""],
      [
        ...machineFacts(),
        ["load average (1, 5, 15 min) at start", loadAtStart],
        ["load average at the end", loadAverage()],
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
  if (options.writeDocs) {
    mkdirSync(join(ROOT, "docs"), { recursive: true });
    const demoted = markdown.replaceAll(/^(#+) /gm, "#$1 ");
    writeFileSync(join(ROOT, "docs", "performance.md"), DOCS_INTRO + demoted);
    // The tables are already laid out as Biome does; this catches anything else it would change.
    await runChecked(["bunx", "biome", "format", "--write", "docs/performance.md"]);
    progress("docs/performance.md written");
  }
  return report.verdicts.every((v) => v.met !== false) ? 0 : 1;
}

await runBench({ usage: USAGE, parseOptions, run, beforeCleanup: () => progress("cleaning up") });
