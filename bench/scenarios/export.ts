/**
 * `petbooks export-pets` against PostgreSQL writing the same JSON itself (psql COPY of a query
 * that builds each pet's JSON), at 100,000 and 1,000,000 pets, interleaved, with peak RSS.
 */
import { join } from "node:path";
import type postgres from "postgres";
import { type Context, progress } from "../lib/context.ts";
import { petCounts, seedPets } from "../lib/database.ts";
import { type ExportRun, framedHash, timeCopy, timeExport } from "../lib/export.ts";
import { exportJsonQuery, PHOTO_ROUTE_PREFIX, renderSql } from "../lib/petbooks.ts";
import { fmt, markdownTable, runsTable } from "../lib/report.ts";
import { interleaved, type Timed } from "../lib/rounds.ts";
import { formatRatio, median, pairedRatio } from "../lib/stats.ts";

const PUBLIC_URL = "http://127.0.0.1:3000";
const TARGETS = { ratio: 1.5, rssMb: 150 };
const FRAME = { open: '{"pets":[', separator: ",", close: "]}\n" };

const photoUrl = (column: string) => `'${PUBLIC_URL}${PHOTO_ROUTE_PREFIX}' || ${column}`;
const createdAt = `to_char(p.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')`;

/** A photo URL as a JSON string: to_json quotes and escapes it as JSON.stringify would. */
const photoUrlJson = (column: string) => `to_json(${photoUrl(column)})::text`;

/**
 * Queries that make PostgreSQL write the export's JSON, one pet per line, byte for byte as
 * petbooks writes it (checked); the fastest is the ceiling. `setup` runs first in the session.
 * _GROUP BY join_ is the issue's reference, made of the pets' columns; the others use the JSON
 * pieces each pet row stores (pets.json_head, pets.json_tail, drizzle/0013).
 */
const JSON_QUERIES = {
  "GROUP BY join": {
    setup: "",
    query: `select row_to_json(t) from (
      select p.id, p.name, p.age, p.type, coalesce(ph.photos, '{}') as photos,
        ${createdAt} as created_at
      from pets p left join (
        select pet_id, array_agg(${photoUrl("file_name")} order by created_at, id) as photos
        from pet_photos group by pet_id) ph on ph.pet_id = p.id
      order by p.created_at desc, p.id desc) t`,
  },
  "stored pieces, GROUP BY join, one process, 256 MB work_mem, no JIT": {
    setup: "set max_parallel_workers_per_gather = 0; set jit = off; set work_mem = '256MB'",
    query: `select p.json_head || '[' || coalesce(ph.photos, '') || ']' || p.json_tail
      from pets p left join (
        select pet_id, string_agg(${photoUrlJson("file_name")}, ',' order by created_at, id) as photos
        from pet_photos group by pet_id) ph on ph.pet_id = p.id
      order by p.created_at desc, p.id desc`,
  },
  // petbooks' own statement, from the repository, so that it cannot drift from it.
  "stored pieces, index order, photos looked up for pets with photo_count > 0": {
    setup: "set jit = off",
    query: renderSql(exportJsonQuery(undefined, `${PUBLIC_URL}${PHOTO_ROUTE_PREFIX}`)),
  },
};
type JsonQuery = keyof typeof JSON_QUERIES;
const BARE_ROWS = "select id, name, age, type, created_at from pets";

type Subject = "petbooks" | JsonQuery | "bare rows";

interface SizeResult {
  pets: number;
  runs: Record<Subject, { round: number; load: string; result: ExportRun }[]>;
  ceiling: JsonQuery;
}

async function measureSize(ctx: Context, pets: number, checkBytes: boolean): Promise<SizeResult> {
  const env = { DATABASE_URL: ctx.databaseUrl, DATA_DIR: join(ctx.dir, "data-export"), PUBLIC_URL };
  if (checkBytes) {
    const mine = (await timeExport(ctx.binary, env, "hash")).hash;
    for (const [name, q] of Object.entries(JSON_QUERIES)) {
      if ((await framedHash(ctx.databaseUrl, q.query, FRAME)) !== mine) {
        throw new Error(`export-pets and the query "${name}" do not write the same JSON`);
      }
    }
    progress(`export of ${pets} pets: petbooks and every JSON query write the same bytes`);
  }
  const subjects: Subject[] = [
    "petbooks",
    ...(Object.keys(JSON_QUERIES) as JsonQuery[]),
    "bare rows",
  ];
  progress(`export of ${pets} pets: ${ctx.options.rounds} rounds of ${subjects.length} subjects`);
  const runs = await interleaved(subjects, ctx.options.rounds, (subject) => {
    if (subject === "petbooks") return timeExport(ctx.binary, env);
    // psql's own memory says nothing about PostgreSQL's: only the export's is reported.
    const copy = (setup: string, query: string) =>
      timeCopy(ctx.databaseUrl, setup, query).then((r) => ({ ...r, peakRssMb: Number.NaN }));
    if (subject === "bare rows") return copy("", BARE_ROWS);
    const { setup, query } = JSON_QUERIES[subject];
    return copy(setup, query);
  });
  const seconds = (s: Subject) => median(runs[s].map((r) => r.result.seconds));
  const ceiling = (Object.keys(JSON_QUERIES) as JsonQuery[]).reduce((a, b) =>
    seconds(b) < seconds(a) ? b : a,
  );
  return { pets, runs, ceiling };
}

export async function exportScenario(ctx: Context, sql: postgres.Sql) {
  const { report, options } = ctx;
  const first = await measureSize(ctx, (await petCounts(sql)).pets, true);
  const sizes = [first];
  if (!options.skip1m) {
    const more = 1_000_000 - first.pets;
    progress(`seeding ${more} more pets`);
    await seedPets(sql, more);
    sizes.push(await measureSize(ctx, (await petCounts(sql)).pets, false));
  }
  const rows: string[][] = [];
  const everyRun: Record<string, Timed<ExportRun>[]> = {};
  for (const size of sizes) {
    const s = (subject: Subject) => size.runs[subject].map((r) => r.result.seconds);
    const ratio = pairedRatio(s("petbooks"), s(size.ceiling));
    const bare = pairedRatio(s("petbooks"), s("bare rows"));
    const rss = Math.max(...size.runs.petbooks.map((r) => r.result.peakRssMb));
    const label = size.pets.toLocaleString("en-US");
    rows.push([
      label,
      fmt.s(median(s("petbooks"))),
      `${fmt.s(median(s(size.ceiling)))} (${size.ceiling})`,
      fmt.s(median(s("bare rows"))),
      formatRatio(ratio, TARGETS.ratio),
      formatRatio(bare),
      fmt.mb(rss),
    ]);
    if (size.pets >= 1_000_000) {
      report.judge(
        `export-pets of ${label} pets: time <= ${TARGETS.ratio} x PostgreSQL writing the same JSON`,
        formatRatio(ratio, TARGETS.ratio),
        ratio.median <= TARGETS.ratio,
      );
    }
    report.judge(
      `export-pets of ${label} pets: peak RSS <= ${TARGETS.rssMb} MB`,
      `${fmt.mb(rss)} MB (largest of ${size.runs.petbooks.length})`,
      rss <= TARGETS.rssMb,
    );
    for (const [subject, list] of Object.entries(size.runs))
      everyRun[`${label}, ${subject}`] = list;
  }
  report.section(
    "Export",
    "`petbooks export-pets > /dev/null` against PostgreSQL writing the same JSON itself: " +
      "`psql -c 'COPY (query) TO STDOUT'` to /dev/null, one pet's JSON per line, byte for " +
      "byte what petbooks writes between its commas (checked at 100,000 pets for every query). " +
      "petbooks itself runs the _stored pieces, index order_ query (without JIT) as the same COPY, in one " +
      "read-only transaction (pets.repository.ts exportJsonQuery, db/copy-out.ts), and writes " +
      "its lines joined by commas. " +
      "The ceiling is the fastest of these queries by median: " +
      Object.keys(JSON_QUERIES)
        .map((q) => `_${q}_`)
        .join(", ") +
      ". _Bare rows_: COPY of the pets table's columns, no JSON, no photos. Peak RSS: GNU " +
      "time's maximum resident set size of the export process.",
    markdownTable(
      [
        "pets",
        "petbooks s",
        "PostgreSQL JSON s (query)",
        "bare rows s",
        "petbooks / PostgreSQL JSON",
        "petbooks / bare rows",
        "petbooks peak RSS MB",
      ],
      rows,
    ),
    runsTable(everyRun, {
      seconds: (r) => fmt.s(r.seconds),
      "peak RSS MB": (r) => (Number.isNaN(r.peakRssMb) ? "-" : fmt.mb(r.peakRssMb)),
    }),
  );
}
