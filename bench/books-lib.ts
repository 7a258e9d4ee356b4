/**
 * Helpers of the books benchmark (bench/books.bench.ts): its own database and Redis index, set-based
 * seeding, the Lua scripts wrk runs, and the builds of the two servers under test.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import type postgres from "postgres";
import { connect, databaseUrl } from "./lib/database.ts";
import { ROOT, runChecked } from "./lib/processes.ts";

export const BOOKS_DATABASE = "petbooks_bench_books";
export const booksDatabaseUrl = databaseUrl(BOOKS_DATABASE);
/** A Redis database index of its own: FLUSHDB there touches nothing else on the server. */
export const REDIS_DB = 9;
export const redisUrl = `redis://127.0.0.1:6379/${REDIS_DB}`;

const serverUrl = databaseUrl("postgres");

async function onServer(statement: string): Promise<void> {
  const sql = connect(serverUrl);
  try {
    await sql.unsafe(statement);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export const recreateBooksDatabase = async () => {
  await onServer(`drop database if exists ${BOOKS_DATABASE} with (force)`);
  await onServer(`create database ${BOOKS_DATABASE}`);
};

export const dropBooksDatabase = () =>
  onServer(`drop database if exists ${BOOKS_DATABASE} with (force)`);

function count(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a count: ${n}`);
  return String(n);
}

/**
 * Adds `n` books in one statement (so the statement-level trigger bumps book_stats once), created
 * over the last three years and updated some time after, by 5,000 different authors.
 */
export async function seedBooks(sql: postgres.Sql, n: number): Promise<void> {
  await sql.unsafe(`
    insert into books (id, title, author, published_on, created_at, updated_at)
    select gen_random_uuid(), 'Book number ' || g, 'Author ' || (g % 5000),
      date '1900-01-01' + floor(random() * 45000)::int, c, c + random() * (now() - c)
    from (select g, now() - random() * interval '3 years' as c
          from generate_series(1, ${count(n)}) g) s`);
  await sql.unsafe("vacuum analyze books");
}

/** Back to `n` seeded books and an empty outbox, so the variants of a phase start equal. */
export async function resetBooks(sql: postgres.Sql, n: number): Promise<void> {
  await sql.unsafe("truncate books, outbox restart identity");
  // TRUNCATE fires no row or statement delete triggers: the counter is reset by hand.
  await sql.unsafe("update book_stats set total = 0");
  await seedBooks(sql, n);
  await sql.unsafe("vacuum analyze outbox");
  // Nothing left to flush from the reset: a checkpoint it caused would land in whichever run
  // comes next, whose writes would also pay for the full-page images after it.
  await sql.unsafe("checkpoint");
}

export async function bookCount(sql: postgres.Sql): Promise<number> {
  const [row] = await sql<{ total: string }[]>`select sum(total) as total from book_stats`;
  return Number(row?.total ?? 0);
}

/** `n` ids spread over the whole table. */
export async function sampleBookIds(sql: postgres.Sql, n: number): Promise<string[]> {
  const found = await sql<{ id: string }[]>`select id from books order by random() limit ${n}`;
  return found.map((r) => r.id);
}

/**
 * `n` pending `book.created` events for existing books, one per book, with the JSON the service
 * writes (src/events/events.ts BookEvent), inserted in one statement.
 */
export async function insertPendingEvents(sql: postgres.Sql, n: number): Promise<void> {
  const rfc3339 = (column: string) =>
    `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`;
  await sql.unsafe("truncate outbox restart identity");
  await sql.unsafe(`
    insert into outbox (event_id, aggregate_id, type, payload)
    select b.event_id, b.id, 'book.created', jsonb_build_object(
      'id', b.event_id, 'type', 'book.created',
      'occurred_at', to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'book', jsonb_build_object('id', b.id, 'title', b.title, 'author', b.author,
        'published_on', b.published_on::text, 'created_at', ${rfc3339("b.created_at")},
        'updated_at', ${rfc3339("b.updated_at")}))
    from (select *, gen_random_uuid() as event_id from books order by created_at, id
          limit ${count(n)}) b
    order by b.created_at, b.id`);
  await sql.unsafe("vacuum analyze outbox");
}

export async function outboxCounts(sql: postgres.Sql) {
  const [row] = await sql<{ pending: number; published: number }[]>`
    select count(*) filter (where published_at is null)::int as pending,
           count(*) filter (where published_at is not null)::int as published
    from outbox`;
  return { pending: row?.pending ?? 0, published: row?.published ?? 0 };
}

/** redis-cli against the bench's own database index only. */
export async function redis(...args: string[]): Promise<string> {
  const proc = Bun.spawn(["redis-cli", "-h", "127.0.0.1", "-n", String(REDIS_DB), ...args], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, out, err] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  if (code !== 0) throw new Error(`redis-cli ${args.join(" ")} exited with ${code}: ${err}`);
  return out.trim();
}

export async function machineFacts(sql: postgres.Sql): Promise<string> {
  const nproc = Bun.spawnSync(["nproc"]).stdout.toString().trim();
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1];
  const [pg] = await sql<{ server_version: string }[]>`show server_version`;
  const redisVersion = /^redis_version:(.+)$/m.exec(await redis("info", "server"))?.[1]?.trim();
  return (
    `machine: nproc=${nproc} cpu="${cpu ?? "unknown"}" bun=${Bun.version} ` +
    `postgres=${pg?.server_version ?? "?"} redis=${redisVersion ?? "?"} ` +
    `loadavg(1m)=${loadAverage()}`
  );
}

export const loadAverage = () => (loadavg()[0] ?? 0).toFixed(2);

/** Builds an entry point the way `bun run build` builds ./petbooks (same flags). */
export async function compile(entry: string, outfile: string): Promise<string> {
  await runChecked([
    "bun",
    "build",
    "--compile",
    "--minify",
    "--sourcemap",
    join(ROOT, entry),
    "--outfile",
    outfile,
  ]);
  return outfile;
}

/** Lua for wrk: GET /books/{id} cycling over `ids`, each request with the bearer token. */
export function cycleIdsScript(ids: string[], token: string): string {
  const list = ids.map((id) => `"${id}"`).join(",\n  ");
  return `local ids = {
  ${list}
}
local i = 0
wrk.headers["Authorization"] = "Bearer ${token}"
request = function()
  i = i % #ids + 1
  return wrk.format("GET", "/books/" .. ids[i])
end
`;
}

/** Lua for wrk: the same valid POST /books for every request. */
export function createBookScript(token: string): string {
  const body = JSON.stringify({
    title: "A benchmark book",
    author: "Bench Author",
    published_on: "2001-02-03",
  });
  return `wrk.method = "POST"
wrk.path = "/books"
wrk.body = '${body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer ${token}"
`;
}

/** Lua for wrk: one fixed GET with the bearer token. */
export function getScript(path: string, token: string): string {
  return `wrk.path = "${path}"
wrk.headers["Authorization"] = "Bearer ${token}"
`;
}

export function writeScript(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Runs `work` and measures its wall-clock time. */
export async function runTimed<T>(work: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const started = performance.now();
  const value = await work();
  return { value, seconds: (performance.now() - started) / 1000 };
}

/**
 * CPU used by other work on the machine (another benchmark, a test run…), which would distort the
 * figures: the user and system time, from /proc, of every process that is not the bench's own
 * (the bench itself, and anything whose command line names its workspace or database) nor one of
 * the shared PostgreSQL and Redis servers' own processes; PostgreSQL backends serving other
 * databases count. A process that starts and ends between two snapshots is missed, but whatever
 * it loads (a server, a database) is not.
 */
export class ForeignCpu {
  private static readonly TICKS_PER_SECOND = Number(
    Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim() || 100,
  );

  constructor(private readonly ownMarkers: string[]) {}

  private isForeign(pid: number, cmdline: string): boolean {
    if (pid === process.pid) return false;
    if (this.ownMarkers.some((marker) => cmdline.includes(marker))) return false;
    if (cmdline.startsWith("redis-server") || /\/postgres -D /.test(cmdline)) return false;
    // PostgreSQL's own workers (checkpointer, walwriter…); a backend shows its client "host(port)".
    if (cmdline.startsWith("postgres: ") && !/\(\d+\)/.test(cmdline)) return false;
    return true;
  }

  /** Ticks since boot, the clock of a process's start time in /proc. */
  private static uptimeTicks(): number {
    const seconds = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
    return seconds * ForeignCpu.TICKS_PER_SECOND;
  }

  /** CPU ticks used, and start time, of every foreign process, by pid. */
  snapshot(): CpuSnapshot {
    const at = performance.now();
    const uptimeTicks = ForeignCpu.uptimeTicks();
    const processes = new Map<number, { used: number; started: number }>();
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      try {
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
        if (!this.isForeign(pid, cmdline)) continue;
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        // The fields after "(command)": utime and stime are 11 and 12, starttime is 19.
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const used = Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
        processes.set(pid, { used, started: Number(fields[19] ?? 0) });
      } catch {
        // The process ended while we looked.
      }
    }
    return { at, uptimeTicks, processes };
  }

  /** Cores' worth of foreign CPU between two snapshots (0.25 = a quarter of one core). */
  static cores(before: CpuSnapshot, after: CpuSnapshot): number {
    let ticks = 0;
    for (const [pid, now] of after.processes) {
      const then = before.processes.get(pid);
      if (then && then.started === now.started) ticks += now.used - then.used;
      else if (now.started >= before.uptimeTicks) ticks += now.used; // started in between
    }
    const seconds = (after.at - before.at) / 1000;
    return ticks / ForeignCpu.TICKS_PER_SECOND / seconds;
  }

  /** Foreign CPU (in cores) over `work`. */
  async measure<T>(work: () => Promise<T>): Promise<{ value: T; foreignCores: number }> {
    const before = this.snapshot();
    const value = await work();
    return { value, foreignCores: ForeignCpu.cores(before, this.snapshot()) };
  }

  /** Waits (at most `maxSeconds`) for a second with less than `threshold` cores of foreign CPU. */
  async waitForQuiet(threshold: number, maxSeconds: number): Promise<number> {
    const deadline = performance.now() + maxSeconds * 1000;
    for (;;) {
      const { foreignCores } = await this.measure(() => Bun.sleep(1000));
      if (foreignCores < threshold || performance.now() > deadline) return foreignCores;
    }
  }
}

export interface CpuSnapshot {
  at: number;
  uptimeTicks: number;
  processes: Map<number, { used: number; started: number }>;
}
