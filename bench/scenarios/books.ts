/** GET /books without a cache (CACHE_TTL=0) against its same-SQL ceiling, interleaved. */
import { join } from "node:path";
import { type Context, progress } from "../lib/context.ts";
import { freePorts, LOAD_CORE, type RunningServer } from "../lib/processes.ts";
import { fmt, runsTable } from "../lib/report.ts";
import { interleaved } from "../lib/rounds.ts";
import { formatRatio, median, pairedRatio } from "../lib/stats.ts";
import { runWrk } from "../lib/wrk.ts";
import { CEILING_HTTP, startHttp } from "./pets.ts";

const CONNECTIONS = 64;
const TARGET = 0.9;
const PATH = "/books?limit=20";
const USER = { username: "bench-reader", password: "bench reader password" };

async function ok(res: Promise<Response>, what: string, also = 0): Promise<Response> {
  const answer = await res;
  if (!answer.ok && answer.status !== also)
    throw new Error(`${what} answered ${answer.status}: ${await answer.text()}`);
  return answer;
}

/** Registers the bench user (unless it exists) and logs in through petbooks' own API. */
export async function obtainToken(server: RunningServer): Promise<string> {
  await ok(
    fetch(`${server.baseUrl}/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(USER),
    }),
    "POST /auth/register",
    409,
  );
  const res = await ok(
    fetch(`${server.baseUrl}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", ...USER }),
    }),
    "POST /auth/token",
  );
  return ((await res.json()) as { access_token: string }).access_token;
}

export async function booksScenario(ctx: Context) {
  const { options, report } = ctx;
  const [petbooksPort, ceilingPort] = (await freePorts(2)) as [number, number];
  const env = { DATABASE_URL: ctx.databaseUrl, PUBLIC_URL: "http://127.0.0.1" };
  const petbooks = await startHttp(ctx, "petbooks serve", [ctx.binary, "serve"], petbooksPort, {
    ...env,
    DATA_DIR: join(ctx.dir, "data-postgres"),
  });
  const ceiling = await startHttp(
    ctx,
    "ceiling",
    [process.execPath, CEILING_HTTP],
    ceilingPort,
    env,
  );
  const headers = { authorization: `Bearer ${await obtainToken(petbooks)}` };
  const answers = await Promise.all(
    [petbooks, ceiling].map(async (s) =>
      (await ok(fetch(`${s.baseUrl}${PATH}`, { headers }), `${s.name} GET ${PATH}`)).text(),
    ),
  );
  if (answers[0] !== answers[1] || !answers[0]?.startsWith('{"count":100000')) {
    throw new Error(`petbooks and the ceiling answer GET ${PATH} differently`);
  }
  progress(`GET ${PATH}: same bytes from both; ${options.rounds} rounds`);

  const servers = { petbooks, ceiling };
  const runs = await interleaved(["petbooks", "ceiling"] as const, options.rounds, async (name) => {
    const run = { connections: CONNECTIONS, core: LOAD_CORE, headers };
    const url = `${servers[name].baseUrl}${PATH}`;
    if (options.warmup > 0) await runWrk(url, { ...run, seconds: options.warmup });
    return runWrk(url, { ...run, seconds: options.seconds });
  });
  await Promise.all([petbooks.stop(), ceiling.stop()]);

  const rps = (name: keyof typeof servers) => runs[name].map((r) => r.result.rps);
  const ratio = pairedRatio(rps("petbooks"), rps("ceiling"));
  const failed = [...runs.petbooks, ...runs.ceiling].some((r) => r.result.failures > 0);
  report.judge(
    `GET /books uncached: req/s >= ${TARGET} x same-SQL ceiling`,
    formatRatio(ratio),
    failed ? undefined : ratio.median >= TARGET,
  );
  report.section(
    "GET /books, uncached",
    `\`GET ${PATH}\` with a bearer token, \`CACHE_TTL=0\` (no cache), 100,000 books; wrk -c` +
      `${CONNECTIONS}. **Ceiling**: bench/ceilings/http.ts, the statements captured from the ` +
      "books repository (the page and the count, concurrently, as the service runs them), the " +
      "token checked with src/auth/tokens.ts and the user looked up at most every 5 s, as in " +
      `petbooks; the same bytes (checked). Median of petbooks ${fmt.int(median(rps("petbooks")))} ` +
      `req/s, ceiling ${fmt.int(median(rps("ceiling")))} req/s; ratio ${formatRatio(ratio)}.`,
    runsTable(runs, {
      "req/s": (r) => fmt.int(r.rps),
      "p50 ms": (r) => fmt.ms(r.p50Ms),
      "p99 ms": (r) => fmt.ms(r.p99Ms),
      failed: (r) => String(r.failures),
    }),
  );
}
