/**
 * GET /pets, each filter, in interleaved rounds of five subjects: petbooks on PostgreSQL, its
 * same-SQL ceiling (bench/ceilings/http.ts), PostgreSQL alone (pgbench on the very statement, in
 * the same protocol), petbooks on its embedded defaults (PGlite) and the same ceiling on a copy of
 * that embedded database, with their memory.
 */
import { cpSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { captureOne, recordingDb } from "../lib/capture.ts";
import { API_KEY, type Context, progress } from "../lib/context.ts";
import { localPostgresCpu, petSeedStatements, withSql } from "../lib/database.ts";
import { withCoreBusy } from "../lib/machine.ts";
import { createPetsRepository, openDatabase, PHOTO_ROUTE_PREFIX } from "../lib/petbooks.ts";
import { runPgbench } from "../lib/pgbench.ts";
import {
  childEnv,
  cpuMeter,
  freePorts,
  LOAD_CORE,
  peakRssMb,
  type RunningServer,
  runChecked,
  withOthersPaused,
} from "../lib/processes.ts";
import { cpuColumns, fmt, loadColumns, type Met, markdownTable, runsTable } from "../lib/report.ts";
import { anyFailed, interleaved, medianOf, type Runs, ratioOf, type Timed } from "../lib/rounds.ts";
import { HTTP_CEILING, sameAnswer, startServe, startServeAndCeiling } from "../lib/servers.ts";
import { formatRatio, type Ratio } from "../lib/stats.ts";
import { loadServer, type ServerLoad } from "../lib/wrk.ts";

const CONNECTIONS = 64;
const TARGETS = { ceiling: 0.9, p99: 1.5, postgres: 0.75, embedded: 0.4 };
/**
 * A ceiling under which PostgreSQL spent more than this times petbooks' CPU per request, on the
 * same statement, drove the database worse than petbooks did: it is no ceiling, and its ratios
 * are not judged. Seen once: 2.5 times, on the pages whose answers carry photo URLs
 * (2026-12-04).
 */
const CEILING_DATABASE_CPU_MAX = 1.25;
const FILTERS = [
  { name: "no filter", query: "", hasPhotos: undefined, offset: 0 },
  { name: "has_photos=true", query: "?has_photos=true", hasPhotos: true, offset: 0 },
  { name: "has_photos=false", query: "?has_photos=false", hasPhotos: false, offset: 0 },
  { name: "offset=50000", query: "?offset=50000", hasPhotos: undefined, offset: 50_000 },
] as const;
type Filter = (typeof FILTERS)[number];
const SUBJECTS = [
  "petbooks",
  "ceiling",
  "PostgreSQL alone",
  "embedded",
  "embedded ceiling",
] as const;
type Subject = (typeof SUBJECTS)[number];
/** The subjects that are their own database: no PostgreSQL CPU is theirs. */
const EMBEDDED: readonly Subject[] = ["embedded", "embedded ceiling"];

/** How embedded petbooks and its ceiling are measured, and what the ceiling's ratio tells. */
const EMBEDDED_METHOD =
  "**Embedded.** petbooks on its defaults (PGlite in the process), the same seed, on no core in " +
  "particular: it is its own database, and PostgreSQL is not pinned either (pinned, PGlite's " +
  "WebAssembly compiles and garbage collection took turns with its statements). **Embedded " +
  "ceiling**: the same ceiling (bench/ceilings/http.ts) with PGlite in its own process, on a " +
  "copy of that embedded database taken before either opened it, running the statements as " +
  "embedded petbooks does (each prepared once, then EXECUTE: db/text-query.ts) and answering " +
  "the same bytes (checked before timing), placed as embedded petbooks. Its ratio to petbooks " +
  "on PostgreSQL is what a bare Bun.serve in front of PGlite reaches on this machine: where " +
  "that falls short of the target too, the bare server misses it as well, and what is missing " +
  "is PGlite's own speed, not what petbooks adds. The target asks for 0.4 or for the reason it " +
  "cannot be, with a profile (below): its verdict reads _out of reach, explained_ only where this " +
  "run showed that reason, the embedded ceiling's median under 0.4 and embedded petbooks' at " +
  "least 0.9 of that ceiling (the share the same-SQL target asks on PostgreSQL); otherwise it " +
  "is missed.";

/**
 * Where embedded GET /pets spends its time: what a profile of it showed (bench/profile.ts
 * --embedded; not measured by this run).
 */
const EMBEDDED_PROFILE =
  "**Where embedded time goes.** In a [profile of embedded `GET /pets`]" +
  "(profiles/get-pets-embedded.md) (`bun bench/profile.ts --path /pets --embedded`, " +
  "2026-12-03 14:23 UTC, load average 2.3) 89% of the server's CPU is inside PGlite: PostgreSQL " +
  "compiled to WebAssembly, running each statement in the server's own thread, one at a time; " +
  "petbooks' own code is 3.4%, Elysia 2.7%. PGlite does not parse and plan the page statement for " +
  "every request: statements without parameters are prepared once and run with EXECUTE " +
  "(db/text-query.ts), which took about half of PGlite's time away (the no-filter page: 550 µs " +
  "as text, 250 to 380 µs as EXECUTE). On PostgreSQL the first pages are prepared statements " +
  "too, so both run the same plans. Each pet's JSON, bar its photos, is stored with its row " +
  "(pets.json_head and json_tail, drizzle/0013), so a page joins text instead of formatting a " +
  "uuid, a name and a time for every pet. A page's photo lookups are index-only scans " +
  "(drizzle/0011): as bitmap scans of pet_photos each asked the file system for the table's " +
  "size, an fstat that PGlite's file layer makes in JavaScript (strace over 200 no-filter " +
  "pages: 1,000 fstat calls on pet_photos' file before, none after). What is left is PostgreSQL " +
  "executing the statements in WebAssembly on one thread: the CPU table above shows embedded's " +
  "server spending more per request than petbooks and PostgreSQL together, which on " +
  "PostgreSQL is spread over both cores. `offset=50000` skips its 50,000 rows in the " +
  "newest-first index alone and reads only the page's 20 from the table (drizzle/0012, " +
  "listPageQuery): its statement took 5.4 ms instead of 13.5 on PGlite, 9.2 instead of 11 to " +
  "16 on PostgreSQL. That needs the table's pages marked all-visible: PGlite has no " +
  "autovacuum, so petbooks vacuums and analyzes the embedded database itself " +
  "(db/embedded-maintenance.ts); never vacuumed, the same statement took 32 to 47 ms. The " +
  "WebAssembly also gets faster as the engine optimises it, on other threads: the no-filter " +
  "page statement alone, run in one process 3,000 times at a time, took 597 µs a run in the " +
  "first 3,000 and 190 to 208 after 21,000 with the process pinned to one core, 268 in the " +
  "first 3,000 and 128 after 9,000 unpinned.";

/**
 * Embedded petbooks is its own database, and the database is never pinned (PostgreSQL is not):
 * pinned to the servers' core, PGlite's WebAssembly was compiled and its garbage collected on the
 * core that runs its statements (a scratch A/B, no filter, six interleaved rounds: pinned, 1,893
 * req/s in the first round against 3,947; then a median 0.86 of the unpinned rate, 0.82 to 1.07).
 */
export const EMBEDDED_PLACEMENT = { core: null };

/** A migrated embedded database in `dataDir` holding `count` pets seeded like PostgreSQL's. */
export async function seedEmbedded(ctx: Pick<Context, "binary">, dataDir: string, count: number) {
  await runChecked([ctx.binary, "migrate"], childEnv({ DATA_DIR: dataDir, LOG_LEVEL: "warn" }));
  const database = await openDatabase({ dataDir });
  try {
    await database.db.transaction(async (tx) => {
      for (const statement of petSeedStatements(count)) await tx.execute(sql.raw(statement));
    });
    await database.db.execute(sql.raw("vacuum analyze pets, pet_photos"));
  } finally {
    await database.close();
  }
}

/**
 * petbooks, its ceiling (and petbooks embedded with its ceiling on a copy of its database),
 * checked to answer every filter alike.
 */
async function startServers(ctx: Context, embeddedDir: string | undefined) {
  const [port, ceilingPort, embeddedPort, embeddedCeilingPort] = (await freePorts(4)) as [
    number,
    number,
    number,
    number,
  ];
  // One photo URL base for both, so their answers can be compared byte for byte.
  const pg = { DATABASE_URL: ctx.databaseUrl, PUBLIC_URL: `http://127.0.0.1:${port}` };
  const servers: Partial<Record<Subject, RunningServer>> = await startServeAndCeiling(ctx, pg, [
    port,
    ceilingPort,
  ]);
  if (embeddedDir) {
    // A database in PGlite is one process's: the ceiling gets a copy, taken before either opens it.
    const ceilingDir = `${embeddedDir}-ceiling`;
    cpSync(embeddedDir, ceilingDir, { recursive: true });
    const env = { PUBLIC_URL: `http://127.0.0.1:${embeddedPort}` };
    servers.embedded = await startServe(
      ctx,
      "petbooks embedded",
      embeddedPort,
      { ...env, DATA_DIR: embeddedDir },
      undefined,
      EMBEDDED_PLACEMENT,
    );
    servers["embedded ceiling"] = await startServe(
      ctx,
      "embedded ceiling",
      embeddedCeilingPort,
      { ...env, DATA_DIR: ceilingDir },
      HTTP_CEILING,
      EMBEDDED_PLACEMENT,
    );
  }
  const { petbooks, ceiling } = servers as Record<"petbooks" | "ceiling", RunningServer>;
  for (const filter of FILTERS) {
    const path = `/pets${filter.query}`;
    const body = await sameAnswer(petbooks, ceiling, path, { "x-api-key": API_KEY });
    if (!body.startsWith('{"count":')) throw new Error(`not a page of pets: ${body}`);
    const { embedded, "embedded ceiling": embeddedCeiling } = servers;
    if (embedded && embeddedCeiling) {
      await sameAnswer(embedded, embeddedCeiling, path, { "x-api-key": API_KEY });
    }
  }
  progress(
    "GET /pets: petbooks and the ceilings answer every filter with the same bytes and headers",
  );
  return servers;
}

/**
 * One run of a subject: wrk on a server, or pgbench on the page statement, with the CPU each
 * process spent per request: the server's, PostgreSQL's (`databaseCpu`, when it runs here) and
 * the load generator's.
 */
function measurer(
  ctx: Context,
  servers: Partial<Record<Subject, RunningServer>>,
  databaseCpu: (() => number) | undefined,
) {
  const { options } = ctx;
  const recorder = recordingDb();
  const pets = createPetsRepository(recorder.db);
  const pgbench = async (filter: Filter, seconds: number, clients: number) => {
    // What petbooks sends, as it sends it: a prepared statement or text (db/text-query.ts).
    // The photo URLs' base is in the statement: petbooks' own (its PUBLIC_URL).
    const photoUrlBase = `${servers.petbooks?.baseUrl}${PHOTO_ROUTE_PREFIX}`;
    const page = await captureOne(recorder, () =>
      pets.listJson({ limit: 20, ...filter }, photoUrlBase),
    );
    return runPgbench({
      url: ctx.databaseUrl,
      statement: page.text,
      protocol: page.options.prepare ? "prepared" : "simple",
      clients,
      seconds,
      core: LOAD_CORE,
      scriptFile: join(ctx.dir, "pets-page.sql"),
    });
  };
  const pgbenchClients = new Map<Filter, number>();
  const measure = (subject: Subject, filter: Filter) =>
    withOthersPaused(servers, subject, () => measureAlone(subject, filter));
  const measureAlone = async (subject: Subject, filter: Filter): Promise<Partial<ServerLoad>> => {
    const server = servers[subject];
    if (server) {
      const load = { connections: CONNECTIONS, core: LOAD_CORE, headers: { "X-API-KEY": API_KEY } };
      // Embedded, PostgreSQL is inside the server: its CPU is the server's.
      const database = EMBEDDED.includes(subject) ? undefined : databaseCpu;
      return loadServer(server, `/pets${filter.query}`, {
        ...load,
        ...options,
        databaseCpu: database,
      });
    }
    const clients = pgbenchClients.get(filter) ?? options.pgbenchClients[0] ?? 4;
    if (options.warmup > 0) await pgbench(filter, options.warmup, clients);
    const postgresCpu = databaseCpu && cpuMeter(databaseCpu);
    const [r, coreBusy] = await withCoreBusy(() => pgbench(filter, options.seconds, clients));
    return {
      rps: r.tps,
      coreBusy,
      loadCpuUs: r.loadCpuUs,
      databaseCpuUs: postgresCpu?.(r.transactions),
      failures: r.failed,
    };
  };
  /**
   * PostgreSQL alone at its best: which number of clients that is depends on the machine, so
   * each is tried once, before the rounds, and the fastest runs in every round. Not the faster
   * of several runs in each round: that keeps the luckiest of them, as a best round would.
   */
  const calibrate = async (filter: Filter) => {
    let fastest = { clients: options.pgbenchClients[0] ?? 4, tps: 0 };
    for (const clients of options.pgbenchClients) {
      if (options.warmup > 0) await pgbench(filter, options.warmup, clients);
      const { tps } = await pgbench(filter, options.seconds, clients);
      if (tps > fastest.tps) fastest = { clients, tps };
    }
    pgbenchClients.set(filter, fastest.clients);
    return fastest.clients;
  };
  return { measure, calibrate };
}

/**
 * Why the ceiling is no ceiling (PostgreSQL's CPU per request under it, against petbooks', over
 * CEILING_DATABASE_CPU_MAX), or "". Paired by round, like every ratio: the machine's speed can
 * change within a run (seen: every subject's statement at 8 ms in three rounds, 13 ms in the
 * next two), and medians taken apart would compare different rounds.
 */
export function noCeilingReason(
  runs: Pick<Runs<Subject, Partial<ServerLoad>>, "petbooks" | "ceiling">,
): string {
  const { median } = ratioOf(runs.ceiling, runs.petbooks, (r) => r.databaseCpuUs);
  return median > CEILING_DATABASE_CPU_MAX
    ? `; no ceiling: PostgreSQL spent ${median.toFixed(1)}x petbooks' CPU per request under it`
    : "";
}

/** The filter's verdicts, and its rows of the tables (the embedded one when embedded ran). */
function judgeFilter(
  ctx: Context,
  filter: Filter,
  runs: Runs<Subject, Partial<ServerLoad>>,
): { main: string[]; embedded: string[] | undefined } {
  const rps = (r: Partial<ServerLoad>) => r.rps;
  const vsCeiling = ratioOf(runs.petbooks, runs.ceiling, rps);
  const p99 = ratioOf(runs.petbooks, runs.ceiling, (r) => r.p99Ms);
  const vsPostgres = ratioOf(runs.petbooks, runs["PostgreSQL alone"], rps);
  // Not a target: how near PostgreSQL alone a bare server gets, for scale.
  const ceilingVsPostgres = ratioOf(runs.ceiling, runs["PostgreSQL alone"], rps);
  const invalid = anyFailed(...Object.values<Timed<Partial<ServerLoad>>[]>(runs));
  const judge = (target: string, ratio: Ratio, goal: number, ok: boolean, why = "") =>
    ctx.report.judge(
      `GET /pets ${filter.name}: ${target}`,
      formatRatio(ratio, goal) + why,
      invalid || why ? undefined : ok,
    );
  const noCeiling = noCeilingReason(runs);
  judge(
    `req/s >= ${TARGETS.ceiling} x same-SQL ceiling`,
    vsCeiling,
    TARGETS.ceiling,
    vsCeiling.median >= TARGETS.ceiling,
    noCeiling,
  );
  judge(
    `p99 <= ${TARGETS.p99} x ceiling's`,
    p99,
    TARGETS.p99,
    p99.median <= TARGETS.p99,
    noCeiling,
  );
  judge(
    `req/s >= ${TARGETS.postgres} x PostgreSQL alone (pgbench)`,
    vsPostgres,
    TARGETS.postgres,
    vsPostgres.median >= TARGETS.postgres,
  );
  const embedded = embeddedRow(filter, runs);
  if (embedded) {
    // Beside it, what a bare server on PGlite reached: how far the target is in reach at all.
    const { text } = embedded;
    ctx.report.judge(
      `GET /pets ${filter.name}: embedded req/s >= ${TARGETS.embedded} x petbooks on PostgreSQL`,
      `${text.vsPostgres}; embedded ceiling ${text.bound}, embedded / its ceiling ${text.vsCeiling}`,
      invalid ? undefined : embeddedVerdict(embedded),
    );
  }
  const cpu = (s: Subject) => fmt.int(medianOf(runs[s], (r) => r.cpuUs));
  const main = [
    filter.name,
    ...(["petbooks", "ceiling", "PostgreSQL alone"] as const).map((s) =>
      fmt.int(medianOf(runs[s], rps)),
    ),
    formatRatio(vsCeiling, TARGETS.ceiling),
    formatRatio(p99, TARGETS.p99),
    formatRatio(vsPostgres, TARGETS.postgres),
    formatRatio(ceilingVsPostgres),
    `${cpu("petbooks")} / ${cpu("ceiling")}`,
  ];
  return { main, embedded: embedded?.row };
}

/**
 * The filter's embedded figures, when embedded petbooks ran: its ratio to petbooks on
 * PostgreSQL (the target), the embedded ceiling's (what a bare server in front of PGlite reached
 * here), and embedded petbooks' to its ceiling; then its row of the embedded table.
 */
export function embeddedRow(filter: Filter, runs: Runs<Subject, Partial<ServerLoad>>) {
  const embedded = runs.embedded;
  const ceiling = runs["embedded ceiling"];
  if (!embedded?.length || !ceiling?.length) return undefined;
  const rps = (r: Partial<ServerLoad>) => r.rps;
  const cpu = (list: typeof embedded) => fmt.int(medianOf(list, (r) => r.cpuUs));
  const vsPostgres = ratioOf(embedded, runs.petbooks, rps);
  const bound = ratioOf(ceiling, runs.petbooks, rps);
  const vsCeiling = ratioOf(embedded, ceiling, rps);
  // Each with the digit its verdict turns on (embeddedVerdict): a 0.897 that missed 0.9 is not
  // shown as 0.90.
  const text = {
    vsPostgres: formatRatio(vsPostgres, TARGETS.embedded),
    bound: formatRatio(bound, TARGETS.embedded),
    vsCeiling: formatRatio(vsCeiling, TARGETS.ceiling),
  };
  const row = [
    filter.name,
    fmt.int(medianOf(embedded, rps)),
    fmt.int(medianOf(ceiling, rps)),
    text.vsPostgres,
    text.bound,
    text.vsCeiling,
    `${cpu(embedded)} / ${cpu(ceiling)}`,
  ];
  return { vsPostgres, bound, vsCeiling, text, row };
}

/**
 * The embedded target: met at 0.4 of petbooks on PostgreSQL. The issue allows, in its place, an
 * explanation in the docs of why it cannot be met (EMBEDDED_PROFILE): that stands only where this
 * run showed it, the bare server on PGlite missing the target as well while embedded petbooks
 * keeps the main target's share of that bare server.
 */
export function embeddedVerdict(
  figures: Record<"vsPostgres" | "bound" | "vsCeiling", Pick<Ratio, "median">>,
): Met {
  if (figures.vsPostgres.median >= TARGETS.embedded) return true;
  const outOfReach = figures.bound.median < TARGETS.embedded;
  return outOfReach && figures.vsCeiling.median >= TARGETS.ceiling ? "explained" : false;
}

/** ", core 0 0.97 / core 1 0.70 busy": each core's busy share, medians of the runs; or "". */
function coresBusy(list: Timed<Partial<ServerLoad>>[]): string {
  const cores = Math.max(0, ...list.map((r) => r.result.coreBusy?.length ?? 0));
  if (cores === 0) return "";
  const shares = Array.from({ length: cores }, (_, i) =>
    medianOf(list, (r) => r.coreBusy?.[i]).toFixed(2),
  );
  return `, ${shares.map((share, i) => `core ${i} ${share}`).join(" / ")} busy`;
}

/**
 * The filter's row of the CPU table: each subject's CPU per request by process (medians of its
 * measured runs) and the cores it kept busy (its rate times that CPU), then the ratio of
 * petbooks to PostgreSQL alone that the CPU totals give if both kept the cores equally busy,
 * and the same ratio for a server that cost no CPU at all: PostgreSQL's and wrk's share of the
 * cheaper of petbooks and the ceiling, an upper estimate for any server in front of PostgreSQL.
 */
export function cpuRow(filter: Filter, runs: Runs<Subject, Partial<ServerLoad>>): string[] {
  const parts = (r: Partial<ServerLoad>, s: Subject) =>
    s === "PostgreSQL alone"
      ? [r.databaseCpuUs, r.loadCpuUs]
      : s === "embedded"
        ? [r.cpuUs, r.loadCpuUs]
        : [r.cpuUs, r.databaseCpuUs, r.loadCpuUs];
  const total = (values: (number | undefined)[]) =>
    values.reduce<number>((sum, v) => sum + (v ?? Number.NaN), 0);
  const cpu = (s: Subject) => {
    const list = runs[s] ?? [];
    if (list.length === 0) return { text: "-", total: Number.NaN, medians: [] };
    const medians = parts({}, s).map((_, i) => medianOf(list, (r) => parts(r, s)[i]));
    const sum = total(medians);
    if (Number.isNaN(sum)) return { text: "-", total: sum, medians };
    const cores = medianOf(list, (r) => ((r.rps ?? Number.NaN) * total(parts(r, s))) / 1e6);
    const text = `${fmt.int(sum)} = ${medians.map((v) => fmt.int(v)).join(" + ")}; ${cores.toFixed(1)} cores${coresBusy(list)}`;
    return { text, total: sum, medians };
  };
  // What a server's requests cost PostgreSQL and wrk: its total without its own CPU (the first).
  const beyondServer = (c: ReturnType<typeof cpu>) => c.total - (c.medians[0] ?? Number.NaN);
  const petbooks = cpu("petbooks");
  const ceiling = cpu("ceiling");
  const alone = cpu("PostgreSQL alone");
  const ratio = (value: number) => (Number.isNaN(value) ? "-" : value.toFixed(2));
  return [
    filter.name,
    petbooks.text,
    ceiling.text,
    alone.text,
    cpu("embedded").text,
    ratio(alone.total / petbooks.total),
    ratio(alone.total / Math.min(beyondServer(petbooks), beyondServer(ceiling))),
  ];
}

export async function petsScenario(ctx: Context, embeddedDir: string | undefined) {
  const { options, report } = ctx;
  const servers = await startServers(ctx, embeddedDir);
  const databaseCpu = await withSql(ctx.databaseUrl, localPostgresCpu);
  const { measure, calibrate } = measurer(ctx, servers, databaseCpu);
  const subjects = SUBJECTS.filter((s) => !EMBEDDED.includes(s) || servers[s]);
  const rows: string[][] = [];
  const embeddedRows: string[][] = [];
  const cpuRows: string[][] = [];
  const everyRun: Record<string, Timed<Partial<ServerLoad>>[]> = {};
  const calibrated: string[] = [];
  for (const filter of FILTERS) {
    const clients = await withOthersPaused(servers, "PostgreSQL alone", () => calibrate(filter));
    calibrated.push(`${filter.name} ${clients}`);
    progress(`GET /pets ${filter.name}: pgbench fastest with ${clients} clients`);
    progress(`GET /pets ${filter.name}: ${options.rounds} rounds of ${subjects.join(", ")}`);
    const runs = await interleaved(subjects, options.rounds, (s) => measure(s, filter));
    const judged = judgeFilter(ctx, filter, runs as Runs<Subject, Partial<ServerLoad>>);
    rows.push(judged.main);
    if (judged.embedded) embeddedRows.push(judged.embedded);
    cpuRows.push(cpuRow(filter, runs as Runs<Subject, Partial<ServerLoad>>));
    for (const s of subjects) everyRun[`${filter.name}, ${s}`] = runs[s];
  }
  const peak = Object.fromEntries(
    Object.entries(servers).map(([s, server]) => [s, fmt.mb(peakRssMb(server.pid) ?? NaN)]),
  );
  await Promise.all(Object.values(servers).map((s) => s.stop()));
  report.section(
    "GET /pets",
    `100,000 pets (30% with 1 to 3 photos), \`limit\` 20. Load: \`wrk -t1 -c${CONNECTIONS}\`, ` +
      `${options.warmup} s warm-up then ${options.seconds} s, on core ${LOAD_CORE}; servers on the ` +
      `other core; PostgreSQL unpinned; pool ${options.pool}. **Ceiling**: bench/ceilings/http.ts, ` +
      "Bun.serve + postgres.js running the repository's own statement, captured, as petbooks runs " +
      "it, and answering the same bytes (checked before timing); nothing else runs on its " +
      "connections, as on petbooks' (bench/ceilings/auth.ts). " +
      "**PostgreSQL alone**: pgbench " +
      "on that statement in the protocol petbooks uses (a prepared statement for the first " +
      `pages, text over the simple protocol for others: \`-M prepared\`, \`-M simple\`), ` +
      `${options.pgbenchClients.join(" and ")} clients each tried once before the rounds ` +
      `(warm-up and a measured run), the fastest then run in every round (${calibrated.join(", ")}). ` +
      "_ceiling / PostgreSQL alone_ is no target: it shows how near PostgreSQL alone a bare " +
      "server in front of it gets on this machine. A ceiling under which PostgreSQL spent more " +
      `than ${CEILING_DATABASE_CPU_MAX} times petbooks' CPU per request (the median of the rounds' ` +
      "ratios; the same statement) drove the database worse than petbooks did: its comparisons " +
      "are not judged. Server CPU is user + system time of the server process over the measured " +
      "run, per request. Ratios are per round, then the median (min-max) of " +
      `${options.rounds} interleaved rounds.`,
    markdownTable(
      [
        "filter",
        "petbooks req/s",
        "ceiling req/s",
        "PostgreSQL alone tps",
        "petbooks / ceiling",
        "p99 petbooks / ceiling",
        "petbooks / PostgreSQL alone",
        "ceiling / PostgreSQL alone",
        "server CPU µs/request, petbooks / ceiling",
      ],
      rows,
    ),
    `Peak RSS: petbooks on PostgreSQL ${peak.petbooks} MB, ceiling ${peak.ceiling} MB` +
      (servers.embedded
        ? `, petbooks embedded ${peak.embedded} MB, embedded ceiling ${peak["embedded ceiling"]} MB.`
        : "."),
    "**Where the two cores go.** CPU per request of every process involved, in µs, medians of " +
      "the measured runs: the server, PostgreSQL (all its processes, " +
      (databaseCpu ? "read from /proc" : "not measured: PostgreSQL is not on this machine") +
      ") and the load generator (wrk, or pgbench); then the cores the subject kept busy (its " +
      "rate times that CPU). Servers, PostgreSQL, wrk and pgbench share the machine's two cores, " +
      "so a subject's rate is the cores it keeps busy divided by its total. Had petbooks kept " +
      "the cores as busy as pgbench did, it would have reached PostgreSQL alone's rate times " +
      "pgbench's total divided by petbooks' total. A server that cost no CPU at all would still " +
      "pay for PostgreSQL and wrk: the last column is that server's ratio, from the " +
      "PostgreSQL and wrk CPU of the cheaper of petbooks and the ceiling, had it kept the " +
      "cores as busy as pgbench: an upper estimate for any server in front of PostgreSQL on " +
      "this machine. Embedded petbooks runs every statement in " +
      "its own thread, so it keeps about one core busy, whatever the other core does. " +
      "Last, how busy each core was (0 to 1, /proc/stat, whatever ran on it; medians of the " +
      "runs): petbooks and the ceiling are on core 0, wrk and pgbench on core 1, PostgreSQL " +
      "and the embedded servers on either. A subject whose core 0 is near 1 while core 1 is not " +
      "was held back by the server's core, and only a cheaper server would have served more.",
    markdownTable(
      [
        "filter",
        "petbooks: server + PostgreSQL + wrk",
        "ceiling: server + PostgreSQL + wrk",
        "PostgreSQL alone: PostgreSQL + pgbench",
        "embedded: server + wrk",
        "petbooks / PostgreSQL alone, from CPU",
        "a server costing nothing / PostgreSQL alone, from CPU",
      ],
      cpuRows,
    ),
    ...(embeddedRows.length > 0
      ? [
          EMBEDDED_METHOD,
          markdownTable(
            [
              "filter",
              "embedded req/s",
              "embedded ceiling req/s",
              "embedded / petbooks on PostgreSQL",
              "embedded ceiling / petbooks on PostgreSQL",
              "embedded / embedded ceiling",
              "server CPU µs/request, embedded / embedded ceiling",
            ],
            embeddedRows,
          ),
          EMBEDDED_PROFILE,
        ]
      : []),
    runsTable(
      everyRun,
      loadColumns<Partial<ServerLoad>>("req/s", (r) => r.rps, cpuColumns),
    ),
  );
}
