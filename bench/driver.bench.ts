/**
 * What the PostgreSQL driver costs on GET /pets' statements: petbooks' own call (the pets
 * repository's listJson, through postgres.js as petbooks configures it: a named prepared
 * statement, the answer's bytes as they came) against the wire ceiling (bench/ceilings/wire.ts:
 * the same statement prepared once, constant Bind/Execute/Sync bytes, the first column read off
 * the socket), both with 3 connections and 64 statements in flight, in this process, in
 * interleaved rounds, each side's PostgreSQL backends first put in the state petbooks' serve
 * keeps them in (bench/ceilings/auth.ts). The answers are compared byte for byte first. Figures
 * per statement: the rate, this process's CPU (the driver and the loop) and PostgreSQL's CPU (all
 * its processes).
 *
 *   bun bench/driver.bench.ts [--rounds 5] [--statements 30000]
 *
 * Needs PostgreSQL at 127.0.0.1:5432 with trust authentication (or BENCH_POSTGRES_URL); creates
 * and finally drops the database petbooks_bench_driver.
 */
import { wirePool } from "./ceilings/wire.ts";
import { runBench } from "./lib/cleanup.ts";
import { openWorkspace, progress } from "./lib/context.ts";
import { localPostgresCpu, seedPets } from "./lib/database.ts";
import { loadAverage } from "./lib/machine.ts";
import { createPetsRepository, listPageQuery, openDatabase, renderSql } from "./lib/petbooks.ts";
import { cpuMeter, cpuSeconds } from "./lib/processes.ts";
import { markdownTable } from "./lib/report.ts";
import { figures, interleaved, ratioOf } from "./lib/rounds.ts";
import { formatRatio, median, spread } from "./lib/stats.ts";

const PETS = 100_000;
const POOL = 3;
const IN_FLIGHT = 64;
const PHOTO_URL_BASE = "http://127.0.0.1:3000/photos/";
const FILTERS = [
  { name: "no filter", hasPhotos: undefined },
  { name: "has_photos=true", hasPhotos: true },
  { name: "has_photos=false", hasPhotos: false },
] as const;
const SUBJECTS = ["petbooks (postgres.js)", "wire ceiling"] as const;

interface Run {
  rate: number;
  clientUs: number;
  postgresUs: number;
}

/** `count` calls of `call`, `IN_FLIGHT` at a time, with the CPU each side spent per call. */
async function measure(
  call: () => Promise<unknown>,
  count: number,
  postgresCpu: () => number,
): Promise<Run> {
  const client = cpuMeter(() => cpuSeconds(process.pid));
  const database = cpuMeter(postgresCpu);
  const started = performance.now();
  let issued = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (issued < count) {
        issued++;
        await call();
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { rate: count / seconds, clientUs: client(count), postgresUs: database(count) };
}

const sameBytes = (a: unknown, b: unknown) =>
  Buffer.from(a as Uint8Array).equals(Buffer.from(b as Uint8Array));

await runBench({
  script: "bench/driver.bench.ts",
  options: {
    rounds: { int: 5, help: "interleaved rounds per statement" },
    statements: { int: 30_000, help: "statements per run" },
  },
  run: async (o, cleanup) => {
    const ws = await openWorkspace(cleanup, { name: "driver", database: "petbooks_bench_driver" });
    progress(`seeding ${PETS} pets`);
    await seedPets(ws.sql, PETS);
    const postgresCpu = await localPostgresCpu(ws.sql);
    if (!postgresCpu) throw new Error("PostgreSQL's processes are not readable from here");
    const database = await openDatabase({ databaseUrl: ws.databaseUrl, poolSize: POOL });
    cleanup.defer(database.close);
    const pets = createPetsRepository(database.db);
    const startLoad = loadAverage();
    const rows: string[][] = [];
    const runRows: string[][] = [];
    for (const filter of FILTERS) {
      const page = { limit: 20, offset: 0, hasPhotos: filter.hasPhotos };
      const text = renderSql(listPageQuery(page, PHOTO_URL_BASE));
      const wire = await wirePool(ws.databaseUrl, text, POOL);
      cleanup.defer(wire.close);
      const calls = {
        "petbooks (postgres.js)": () => pets.listJson(page, PHOTO_URL_BASE),
        "wire ceiling": wire.run,
      };
      if (!sameBytes(await calls["petbooks (postgres.js)"](), await wire.run())) {
        throw new Error(`${filter.name}: the two answers differ`);
      }
      const runs = await interleaved(SUBJECTS, o.rounds, async (subject, round) => {
        progress(`${filter.name}, round ${round}: ${subject}`);
        await measure(calls[subject], Math.ceil(o.statements / 10), postgresCpu); // warm-up
        return measure(calls[subject], o.statements, postgresCpu);
      });
      const [driver, ceiling] = [runs[SUBJECTS[0]], runs[SUBJECTS[1]]];
      const medianOf = (subject: (typeof SUBJECTS)[number], pick: (r: Run) => number) => {
        const values = figures(runs[subject], pick);
        return `${median(values).toFixed(1)} (${spread(values, (n) => n.toFixed(1))})`;
      };
      rows.push([
        filter.name,
        ...SUBJECTS.map((s) => medianOf(s, (r) => r.rate / 1000)),
        ...SUBJECTS.map((s) => medianOf(s, (r) => r.clientUs)),
        ...SUBJECTS.map((s) => medianOf(s, (r) => r.postgresUs)),
        formatRatio(ratioOf(driver, ceiling, (r) => r.clientUs)),
      ]);
      for (const subject of SUBJECTS) {
        for (const { round, load, result } of runs[subject]) {
          runRows.push([
            filter.name,
            String(round),
            subject,
            (result.rate / 1000).toFixed(1),
            result.clientUs.toFixed(1),
            result.postgresUs.toFixed(1),
            load,
          ]);
        }
      }
      wire.close();
    }
    console.log(
      [
        `# The driver's cost on GET /pets' statements, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
        "",
        `\`bun bench/driver.bench.ts --rounds ${o.rounds} --statements ${o.statements}\`: ${PETS.toLocaleString("en")} pets, first pages of 20, ` +
          `${POOL} connections, ${IN_FLIGHT} statements in flight; medians of ${o.rounds} interleaved rounds (min-max). ` +
          `Load average ${startLoad} at start, ${loadAverage()} at the end.`,
        "",
        markdownTable(
          [
            "statement",
            "petbooks: thousand statements/s",
            "wire ceiling: thousand statements/s",
            "petbooks: client CPU µs/statement",
            "wire ceiling: client CPU µs/statement",
            "petbooks: PostgreSQL CPU µs/statement",
            "wire ceiling: PostgreSQL CPU µs/statement",
            "client CPU, petbooks / wire ceiling",
          ],
          rows,
        ),
        "",
        markdownTable(
          [
            "statement",
            "round",
            "subject",
            "thousand/s",
            "client µs",
            "PostgreSQL µs",
            "load at start",
          ],
          runRows,
        ),
      ].join("\n"),
    );
  },
});
