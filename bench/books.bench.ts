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
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type postgres from "postgres";
import { createAuthService } from "../src/auth/auth.service.ts";
import { createTokenIssuer } from "../src/auth/tokens.ts";
import { createUsersRepository } from "../src/auth/users.repository.ts";
import { openDatabase } from "../src/db/client.ts";
import { createInProcessBus } from "../src/events/bus.ts";
import { createOutboxRelay } from "../src/events/relay.ts";
import { silentLogger } from "../src/logger.ts";
import { type Cleanup, runBench } from "./lib/cleanup.ts";
import { JWT_SECRET } from "./lib/context.ts";
import { connect, dropDatabase, recreateDatabase, seedBooks } from "./lib/database.ts";
import { loadAverage } from "./lib/machine.ts";
import { integerOption } from "./lib/options.ts";
import {
  buildPetbooks,
  childEnv,
  compile,
  freePorts,
  LOAD_CORE,
  type RunningServer,
  runChecked,
  SERVER_CORE,
  startPinnedServer,
} from "./lib/processes.ts";
import { table } from "./lib/report.ts";
import { interleaved, type Timed } from "./lib/rounds.ts";
import { formatRatio, median, pairedRatio } from "./lib/stats.ts";
import { type LoadResult, loadServer } from "./lib/wrk.ts";
import { obtainToken } from "./scenarios/books.ts";

const DATABASE = "petbooks_bench_books";
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

interface Options {
  seconds: number;
  rounds: number;
  pool: number;
  postOnly: boolean;
}

const USAGE =
  "usage: bun bench/books.bench.ts [--duration SECONDS] [--rounds N] [--pool SIZE] [--only post]";

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: "string", default: "10" },
      rounds: { type: "string", default: "2" },
      pool: { type: "string", default: "10" },
      only: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return undefined;
  if (values.only !== undefined && values.only !== "post") throw new Error('--only takes "post"');
  return {
    seconds: integerOption(values.duration, "duration"),
    rounds: integerOption(values.rounds, "rounds"),
    pool: integerOption(values.pool, "pool"),
    postOnly: values.only === "post",
  };
}

const progress = (message: string) => console.error(`· ${message} (load ${loadAverage()})`);

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

async function run(options: Options, cleanup: Cleanup): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "petbooks-bench-books-"));
  cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
  progress("building petbooks and the no-outbox server from the current sources");
  const [binary, noOutbox] = await Promise.all([
    buildPetbooks(dir),
    compile("bench/books-no-outbox-server.ts", join(dir, "books-no-outbox-server")),
  ]);
  const url = await recreateDatabase(DATABASE);
  cleanup.defer(() => dropDatabase(DATABASE));
  await redis("flushdb");
  cleanup.defer(() => redis("flushdb"));
  await runChecked([binary, "migrate"], childEnv({ DATABASE_URL: url, LOG_LEVEL: "warn" }));
  const sql = connect(url);
  cleanup.defer(() => sql.end({ timeout: 5 }));
  progress(`seeding ${BOOKS} books`);
  await seedBooks(sql, BOOKS);
  const ids = (
    await sql<{ id: string }[]>`select id from books order by random() limit ${SAMPLE_IDS}`
  ).map((r) => r.id);

  const ports = await freePorts(4);
  const start = async (name: string, cmd: string[], cacheTtl: number, port: number) => {
    const server = await startPinnedServer({
      name,
      cmd,
      port,
      env: childEnv({
        DATABASE_URL: url,
        DATABASE_POOL_SIZE: String(options.pool),
        REDIS_URL,
        CACHE_TTL: String(cacheTtl),
        API_KEY: "petbooks-bench-api-key",
        JWT_SECRET,
        HOST: "127.0.0.1",
        PORT: String(port),
        PUBLIC_URL: `http://127.0.0.1:${port}`,
        LOG_LEVEL: "warn",
        DATA_DIR: join(dir, "data"),
      }),
      logFile: join(dir, `${name.replaceAll(/\W+/g, "-")}.log`),
    });
    cleanup.defer(server.stop);
    return server;
  };
  const first = await start("petbooks serve", [binary, "serve"], 0, ports[0] as number);
  const token = await obtainToken(first);
  await first.stop();
  const scripts = luaScripts(dir, token, ids);
  const wrk = (server: RunningServer, script: string, seconds: number, connections = CONNECTIONS) =>
    loadServer(server, "", { script, connections, core: LOAD_CORE, seconds, warmup: 2 });

  const lines: string[] = [];
  const verdicts: string[][] = [];
  const judge = (
    measure: string,
    value: string,
    target: string,
    ok: boolean,
    runs: Timed<LoadResult>[] = [],
  ) => {
    const failed = runs.reduce((n, r) => n + r.result.failures, 0);
    verdicts.push([
      measure,
      value,
      target,
      failed ? `INVALID (${failed} failed)` : ok ? "met" : "MISSED",
    ]);
  };
  const runTable = (title: string, runs: Record<string, Timed<LoadResult>[]>) => {
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
    lines.push(
      "",
      title,
      table(["run", "req/s", "p50 ms", "p99 ms", "failed", "load average"], rows),
    );
  };
  const rps = (runs: Timed<LoadResult>[]) => runs.map((r) => r.result.rps);

  let cachedSingleUs = Number.NaN;
  let cachedLatencyUs = Number.NaN;
  if (!options.postOnly) {
    await redis("flushdb");
    const servers = {
      cached: await start("serve cached", [binary, "serve"], 600, ports[1] as number),
      off: await start("serve CACHE_TTL=0", [binary, "serve"], 0, ports[2] as number),
    };
    progress(`warming the cache with ${SAMPLE_IDS} books and the list page`);
    const headers = { authorization: `Bearer ${token}` };
    for (const path of [LIST_PATH, ...ids.map((id) => `/books/${id}`)]) {
      const res = await fetch(`${servers.cached.baseUrl}${path}`, { headers });
      if (!res.ok) throw new Error(`GET ${path} answered ${res.status}`);
      await res.arrayBuffer();
    }
    for (const [what, script, target] of [
      [`GET ${LIST_PATH}`, scripts.list, TARGETS.listSpeedup],
      ["GET /books/{id}", scripts.ids, TARGETS.singleSpeedup],
    ] as const) {
      progress(`${what}: cached against CACHE_TTL=0, ${options.rounds} rounds`);
      const runs = await interleaved(["cached", "off"] as const, options.rounds, (name) =>
        wrk(servers[name], script, options.seconds),
      );
      runTable(`${what}, warm Redis cache against CACHE_TTL=0 (wrk -c${CONNECTIONS})`, runs);
      const speedup = pairedRatio(rps(runs.cached), rps(runs.off));
      const all = [...runs.cached, ...runs.off];
      judge(
        `${what} req/s cached / CACHE_TTL=0`,
        formatRatio(speedup),
        `>= ${target}`,
        speedup.median >= target,
        all,
      );
      const p99 = median(runs.cached.map((r) => r.result.p99Ms));
      judge(
        `${what} p99 cached, c${CONNECTIONS}`,
        `${p99.toFixed(2)} ms`,
        `< ${TARGETS.maxP99Ms} ms`,
        p99 < TARGETS.maxP99Ms,
        runs.cached,
      );
      if (script === scripts.ids) cachedSingleUs = 1e6 / median(rps(runs.cached));
    }
    const c1 = await wrk(servers.cached, scripts.ids, 5, 1);
    cachedLatencyUs = c1.p50Ms * 1000;
    await Promise.all([servers.cached.stop(), servers.off.stop()]);
  }

  progress(`POST /books, outbox against no outbox, ${options.rounds} rounds, each from a reset`);
  const posts = await interleaved(
    ["outbox", "no outbox"] as const,
    options.rounds,
    async (name) => {
      await resetBooks(sql);
      await redis("flushdb");
      const cmd = name === "outbox" ? [binary, "serve"] : [noOutbox];
      const server = await start(`POST ${name}`, cmd, 600, ports[3] as number);
      try {
        return await wrk(server, scripts.post, options.seconds);
      } finally {
        await server.stop();
      }
    },
  );
  runTable(
    `POST /books with the outbox against without it (wrk -c${CONNECTIONS}, CACHE_TTL=600)`,
    posts,
  );
  const outbox = pairedRatio(rps(posts.outbox), rps(posts["no outbox"]));
  judge(
    "POST /books req/s outbox / no outbox",
    formatRatio(outbox),
    `>= ${TARGETS.outboxRatio}`,
    outbox.median >= TARGETS.outboxRatio,
    [...posts.outbox, ...posts["no outbox"]],
  );

  if (!options.postOnly) {
    // In-process phases run where the server ran, as they would inside `serve`.
    await runChecked(["taskset", "-a", "-cp", String(SERVER_CORE), String(process.pid)]);
    progress(`relay: draining ${RELAY_EVENTS} events to the in-process bus`);
    await insertPendingEvents(sql);
    const database = await openDatabase({ databaseUrl: url, poolSize: options.pool }, silentLogger);
    try {
      const bus = createInProcessBus(silentLogger);
      let delivered = 0;
      bus.subscribe(() => {
        delivered += 1;
      });
      const relay = createOutboxRelay({
        db: database.db,
        transport: bus,
        logger: silentLogger,
        batchSize: 500,
      });
      const started = performance.now();
      const events = await relay.drain();
      const rate = events / ((performance.now() - started) / 1000);
      lines.push(
        "",
        `Outbox relay: ${events} events drained, ${delivered} delivered, ${rate.toFixed(0)} events/s (load ${loadAverage()})`,
      );
      judge(
        "outbox relay to the in-process bus",
        `${rate.toFixed(0)} events/s`,
        `>= ${TARGETS.relayEventsPerSecond}`,
        rate >= TARGETS.relayEventsPerSecond && delivered === RELAY_EVENTS,
      );

      progress("token checks, in process");
      const tokens = createTokenIssuer(JWT_SECRET, 3600);
      const auth = createAuthService({ users: createUsersRepository(database.db), tokens });
      const perCallUs = async (calls: number, work: () => Promise<unknown>) => {
        const rounds: number[] = [];
        for (let r = 0; r < 6; r++) {
          const started = performance.now();
          for (let i = 0; i < calls; i++) await work();
          if (r > 0) rounds.push(((performance.now() - started) * 1000) / calls);
        }
        return median(rounds);
      };
      const authUs = await perCallUs(10_000, () => auth.authenticate(`Bearer ${token}`));
      const share = Math.max(authUs / cachedSingleUs, authUs / cachedLatencyUs);
      lines.push(
        "",
        `Token check + user (auth.authenticate): ${authUs.toFixed(1)} µs per request; a cached GET /books/{id} takes ${cachedSingleUs.toFixed(0)} µs of the server (1/(req/s)) and ${cachedLatencyUs.toFixed(0)} µs at one connection (p50)`,
      );
      judge(
        "token check + user per request, of a cached GET /books/{id}",
        `${authUs.toFixed(1)} µs = ${(100 * share).toFixed(1)}%`,
        `< ${100 * TARGETS.maxAuthShare}%`,
        share < TARGETS.maxAuthShare,
      );
    } finally {
      await database.close();
    }
  }
  console.log(
    [
      ...lines,
      "",
      `Summary (medians of ${options.rounds} interleaved rounds, min-max)`,
      table(["measure", "value", "target", "verdict"], verdicts),
    ].join("\n"),
  );
  return verdicts.every((v) => v[3] === "met") ? 0 : 1;
}

await runBench({ usage: USAGE, parseOptions, run, beforeCleanup: () => progress("cleaning up") });
