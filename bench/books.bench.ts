/**
 * The books cache and write path, on 100,000 books in PostgreSQL and Redis (GET /books without a
 * cache against its same-SQL ceiling is in the report, bench/run.ts):
 *   - GET /books?limit=20 and GET /books/{id}, a warm Redis cache against CACHE_TTL=0;
 *   - POST /books with the transactional outbox against bench/books-no-outbox-server.ts (the
 *     same app without the outbox row), every run from the same reset state;
 *   - the outbox relay draining 50,000 events to the in-process bus;
 *   - a bearer token check per request, against the time of a cached GET /books/{id}.
 * Comparisons run in interleaved rounds (A B, B A, ...): medians with min-max, the load average
 * at the start of every run.
 *
 *   bun bench/books.bench.ts [--duration 10] [--rounds 2] [--pool 10] [--only post]
 *
 * Servers on core 0, wrk on core 1. Needs PostgreSQL at 127.0.0.1:5432 (or BENCH_POSTGRES_URL),
 * Redis at 127.0.0.1:6379, wrk and taskset. Creates and finally drops the database
 * petbooks_bench_books, and uses (and FLUSHDBs) Redis database 9 only.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type postgres from "postgres";
import { runBench } from "./lib/cleanup.ts";
import { JWT_SECRET, openWorkspace, progress, type Workspace } from "./lib/context.ts";
import { seedBooks } from "./lib/database.ts";
import { loadAverage } from "./lib/machine.ts";
import type { Options } from "./lib/options.ts";
import { bearerAuthenticator, openDatabase, relayToInProcessBus } from "./lib/petbooks.ts";
import {
  compile,
  freePorts,
  LOAD_CORE,
  type RunningServer,
  runChecked,
  SERVER_CORE,
} from "./lib/processes.ts";
import { table } from "./lib/report.ts";
import { figures, interleaved, medianOf, type Runs, ratioOf, type Timed } from "./lib/rounds.ts";
import { obtainToken, startServe } from "./lib/servers.ts";
import { formatRatio, median } from "./lib/stats.ts";
import { type LoadResult, loadServer } from "./lib/wrk.ts";

const REDIS_URL = "redis://127.0.0.1:6379/9";
const BOOKS = 100_000;
const SAMPLE_IDS = 1_000;
const RELAY_EVENTS = 50_000;
const CONNECTIONS = 64;
const LIST_PATH = "/books?limit=20";
const TARGETS = {
  listSpeedup: 2,
  singleSpeedup: 1,
  maxP99Ms: 25,
  outboxRatio: 0.8,
  relayEventsPerSecond: 5_000,
  /** Token check (and user) per request, as a share of a cached GET /books/{id}. */
  maxAuthShare: 0.1,
};

const OPTIONS = {
  duration: { int: 10, help: "seconds per measured run (after 2 s of warm-up)" },
  rounds: { int: 2, help: "interleaved rounds per comparison" },
  pool: { int: 10, help: "DATABASE_POOL_SIZE of the servers and the relay" },
  only: { choices: ["post"], help: "post: only POST /books, outbox against no outbox" },
} as const;

async function redis(...args: string[]): Promise<string> {
  return (await runChecked(["redis-cli", "-u", REDIS_URL, ...args])).trim();
}

/** Back to BOOKS seeded books and an empty outbox, so every POST run starts the same. */
async function resetBooks(sql: postgres.Sql) {
  await sql.unsafe("truncate books, outbox restart identity");
  // TRUNCATE fires no delete triggers: the counter is reset by hand.
  await sql.unsafe("update book_stats set total = 0");
  await seedBooks(sql, BOOKS);
  await sql.unsafe("vacuum analyze outbox");
  // A checkpoint the reset caused would otherwise land in the next run.
  await sql.unsafe("checkpoint");
}

/** RELAY_EVENTS pending book.created events with the service's JSON, in one statement. */
async function insertPendingEvents(sql: postgres.Sql) {
  const rfc3339 = (c: string) => `to_char(${c} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`;
  await sql.unsafe("truncate outbox restart identity");
  await sql.unsafe(`
    insert into outbox (event_id, aggregate_id, type, payload)
    select b.event_id, b.id, 'book.created', jsonb_build_object(
      'id', b.event_id, 'type', 'book.created', 'occurred_at', ${rfc3339("now()")},
      'book', jsonb_build_object('id', b.id, 'title', b.title, 'author', b.author,
        'published_on', b.published_on::text, 'created_at', ${rfc3339("b.created_at")},
        'updated_at', ${rfc3339("b.updated_at")}))
    from (select *, gen_random_uuid() as event_id from books order by created_at, id
          limit ${RELAY_EVENTS}) b
    order by b.created_at, b.id`);
  await sql.unsafe("vacuum analyze outbox");
}

/** wrk's Lua: every request with the token; GET cycling over ids, or the same POST. */
function luaScripts(dir: string, token: string, ids: string[]) {
  const auth = `wrk.headers["Authorization"] = "Bearer ${token}"\n`;
  const book = JSON.stringify({
    title: "A bench book",
    author: "Bench",
    published_on: "2001-02-03",
  });
  const scripts = {
    list: `wrk.path = "${LIST_PATH}"\n${auth}`,
    ids: `local ids = {${ids.map((id) => `"${id}"`).join(",")}}\nlocal i = 0\n${auth}request = function()\n  i = i % #ids + 1\n  return wrk.format("GET", "/books/" .. ids[i])\nend\n`,
    post: `wrk.method = "POST"\nwrk.path = "/books"\nwrk.body = '${book}'\nwrk.headers["Content-Type"] = "application/json"\n${auth}`,
  };
  for (const [name, text] of Object.entries(scripts)) writeFileSync(join(dir, `${name}.lua`), text);
  return { list: join(dir, "list.lua"), ids: join(dir, "ids.lua"), post: join(dir, "post.lua") };
}

/** What the phases share: the workspace, the servers' start, wrk, the printed lines. */
interface Bench {
  ws: Workspace & { sql: postgres.Sql };
  options: Options<typeof OPTIONS>;
  ids: string[];
  token: string;
  scripts: ReturnType<typeof luaScripts>;
  start: (name: string, cmd: string[], cacheTtl: number, port: number) => Promise<RunningServer>;
  wrk: (
    server: RunningServer,
    script: string,
    seconds: number,
    connections?: number,
  ) => Promise<LoadResult>;
  lines: string[];
  verdicts: string[][];
}

function judge(
  b: Bench,
  measure: string,
  value: string,
  target: string,
  ok: boolean,
  runs: Timed<LoadResult>[] = [],
) {
  const failed = runs.reduce((n, r) => n + r.result.failures, 0);
  b.verdicts.push([
    measure,
    value,
    target,
    failed ? `INVALID (${failed} failed)` : ok ? "met" : "MISSED",
  ]);
}

function runTable(b: Bench, title: string, runs: Runs<string, LoadResult>) {
  const rows = Object.entries(runs).flatMap(([name, list]) =>
    list.map((r) => [
      `#${r.round} ${name}`,
      r.result.rps.toFixed(0),
      r.result.p50Ms.toFixed(2),
      r.result.p99Ms.toFixed(2),
      String(r.result.failures),
      r.load,
    ]),
  );
  b.lines.push(
    "",
    title,
    table(["run", "req/s", "p50 ms", "p99 ms", "failed", "load average"], rows),
  );
}

const rps = (r: LoadResult) => r.rps;

/** GET /books and /books/{id}, a warm cache against none; what a cached GET costs the server. */
async function cachePhase(b: Bench, ports: number[]) {
  const { options } = b;
  await redis("flushdb");
  const servers = {
    cached: await b.start("serve cached", [b.ws.binary, "serve"], 600, ports[0] as number),
    off: await b.start("serve CACHE_TTL=0", [b.ws.binary, "serve"], 0, ports[1] as number),
  };
  progress(`warming the cache with ${SAMPLE_IDS} books and the list page`);
  const headers = { authorization: `Bearer ${b.token}` };
  for (const path of [LIST_PATH, ...b.ids.map((id) => `/books/${id}`)]) {
    const res = await fetch(`${servers.cached.baseUrl}${path}`, { headers });
    if (!res.ok) throw new Error(`GET ${path} answered ${res.status}`);
    await res.arrayBuffer();
  }
  let cachedSingleUs = Number.NaN;
  for (const [what, script, target] of [
    [`GET ${LIST_PATH}`, b.scripts.list, TARGETS.listSpeedup],
    ["GET /books/{id}", b.scripts.ids, TARGETS.singleSpeedup],
  ] as const) {
    progress(`${what}: cached against CACHE_TTL=0, ${options.rounds} rounds`);
    const runs = await interleaved(["cached", "off"] as const, options.rounds, (name) =>
      b.wrk(servers[name], script, options.duration),
    );
    runTable(b, `${what}, warm Redis cache against CACHE_TTL=0 (wrk -c${CONNECTIONS})`, runs);
    const speedup = ratioOf(runs.cached, runs.off, rps);
    const all = [...runs.cached, ...runs.off];
    judge(
      b,
      `${what} req/s cached / CACHE_TTL=0`,
      formatRatio(speedup),
      `>= ${target}`,
      speedup.median >= target,
      all,
    );
    const p99 = medianOf(runs.cached, (r) => r.p99Ms);
    const ok = p99 < TARGETS.maxP99Ms;
    judge(
      b,
      `${what} p99 cached, c${CONNECTIONS}`,
      `${p99.toFixed(2)} ms`,
      `< ${TARGETS.maxP99Ms} ms`,
      ok,
      runs.cached,
    );
    if (script === b.scripts.ids) cachedSingleUs = 1e6 / median(figures(runs.cached, rps));
  }
  const c1 = await b.wrk(servers.cached, b.scripts.ids, 5, 1);
  await Promise.all([servers.cached.stop(), servers.off.stop()]);
  return { cachedSingleUs, cachedLatencyUs: c1.p50Ms * 1000 };
}

/** POST /books with the outbox against without it, every run from the same reset state. */
async function postPhase(b: Bench, port: number, noOutbox: string) {
  const { options } = b;
  progress(`POST /books, outbox against no outbox, ${options.rounds} rounds, each from a reset`);
  const posts = await interleaved(
    ["outbox", "no outbox"] as const,
    options.rounds,
    async (name) => {
      await resetBooks(b.ws.sql);
      await redis("flushdb");
      const cmd = name === "outbox" ? [b.ws.binary, "serve"] : [noOutbox];
      const server = await b.start(`POST ${name}`, cmd, 600, port);
      try {
        return await b.wrk(server, b.scripts.post, options.duration);
      } finally {
        await server.stop();
      }
    },
  );
  runTable(
    b,
    `POST /books with the outbox against without it (wrk -c${CONNECTIONS}, CACHE_TTL=600)`,
    posts,
  );
  const outbox = ratioOf(posts.outbox, posts["no outbox"], rps);
  const all = [...posts.outbox, ...posts["no outbox"]];
  const ok = outbox.median >= TARGETS.outboxRatio;
  judge(
    b,
    "POST /books req/s outbox / no outbox",
    formatRatio(outbox),
    `>= ${TARGETS.outboxRatio}`,
    ok,
    all,
  );
}

/** In process, on the server's core: the relay draining to the bus, and the bearer check. */
async function inProcessPhases(
  b: Bench,
  cached: { cachedSingleUs: number; cachedLatencyUs: number },
) {
  await runChecked(["taskset", "-a", "-cp", String(SERVER_CORE), String(process.pid)]);
  progress(`relay: draining ${RELAY_EVENTS} events to the in-process bus`);
  await insertPendingEvents(b.ws.sql);
  const database = await openDatabase({ databaseUrl: b.ws.databaseUrl, poolSize: b.options.pool });
  try {
    const relay = await relayToInProcessBus(database.db, 500);
    const started = performance.now();
    const events = await relay.drain();
    const rate = events / ((performance.now() - started) / 1000);
    const delivered = relay.delivered();
    b.lines.push(
      "",
      `Outbox relay: ${events} events drained, ${delivered} delivered, ${rate.toFixed(0)} events/s (load ${loadAverage()})`,
    );
    const ok = rate >= TARGETS.relayEventsPerSecond && delivered === RELAY_EVENTS;
    judge(
      b,
      "outbox relay to the in-process bus",
      `${rate.toFixed(0)} events/s`,
      `>= ${TARGETS.relayEventsPerSecond}`,
      ok,
    );

    progress("token checks, in process");
    const authenticate = await bearerAuthenticator(database.db, JWT_SECRET, 3600);
    const rounds: number[] = [];
    for (let r = 0; r < 6; r++) {
      const started = performance.now();
      for (let i = 0; i < 10_000; i++) await authenticate(`Bearer ${b.token}`);
      if (r > 0) rounds.push(((performance.now() - started) * 1000) / 10_000);
    }
    const authUs = median(rounds);
    const { cachedSingleUs, cachedLatencyUs } = cached;
    const share = Math.max(authUs / cachedSingleUs, authUs / cachedLatencyUs);
    b.lines.push(
      "",
      `Token check + user (auth.authenticate): ${authUs.toFixed(1)} µs per request; a cached GET /books/{id} takes ${cachedSingleUs.toFixed(0)} µs of the server (1/(req/s)) and ${cachedLatencyUs.toFixed(0)} µs at one connection (p50)`,
    );
    judge(
      b,
      "token check + user per request, of a cached GET /books/{id}",
      `${authUs.toFixed(1)} µs = ${(100 * share).toFixed(1)}%`,
      `< ${100 * TARGETS.maxAuthShare}%`,
      share < TARGETS.maxAuthShare,
    );
  } finally {
    await database.close();
  }
}

await runBench({
  script: "bench/books.bench.ts",
  options: OPTIONS,
  run: async (options, cleanup) => {
    const ws = await openWorkspace(cleanup, {
      name: "bench-books",
      database: "petbooks_bench_books",
      pool: options.pool,
    });
    progress("building the no-outbox server from the current sources");
    const noOutbox = await compile(
      "bench/books-no-outbox-server.ts",
      join(ws.dir, "books-no-outbox-server"),
    );
    await redis("flushdb");
    cleanup.defer(() => redis("flushdb"));
    progress(`seeding ${BOOKS} books`);
    await seedBooks(ws.sql, BOOKS);
    const ids = (
      await ws.sql<{ id: string }[]>`select id from books order by random() limit ${SAMPLE_IDS}`
    ).map((r) => r.id);
    const ports = await freePorts(4);
    const env = { DATABASE_URL: ws.databaseUrl, REDIS_URL, DATA_DIR: join(ws.dir, "data") };
    const start = (name: string, cmd: string[], cacheTtl: number, port: number) =>
      startServe(
        ws,
        name,
        port,
        { ...env, CACHE_TTL: String(cacheTtl), PUBLIC_URL: `http://127.0.0.1:${port}` },
        cmd,
      );
    const first = await start("petbooks serve", [ws.binary, "serve"], 0, ports[0] as number);
    const token = await obtainToken(first);
    await first.stop();
    const b: Bench = {
      ws,
      options,
      ids,
      token,
      scripts: luaScripts(ws.dir, token, ids),
      start,
      wrk: (server, script, seconds, connections = CONNECTIONS) =>
        loadServer(server, "", { script, connections, core: LOAD_CORE, seconds, warmup: 2 }),
      lines: [],
      verdicts: [],
    };
    const postOnly = options.only === "post";
    const cached = postOnly ? undefined : await cachePhase(b, ports.slice(1, 3));
    await postPhase(b, ports[3] as number, noOutbox);
    if (cached) await inProcessPhases(b, cached);
    console.log(
      [
        ...b.lines,
        "",
        `Summary (medians of ${options.rounds} interleaved rounds, min-max)`,
        table(["measure", "value", "target", "verdict"], b.verdicts),
      ].join("\n"),
    );
    return b.verdicts.every((v) => v[3] === "met") ? 0 : 1;
  },
});
