import { type Context, progress } from "../lib/context.ts";
import { localPostgresCpu, withSql } from "../lib/database.ts";
import { freePorts, LOAD_CORE, withOthersPaused } from "../lib/processes.ts";
import { cpuColumns, fmt, loadColumns, runsTable } from "../lib/report.ts";
import { anyFailed, interleaved, medianOf, ratioOf } from "../lib/rounds.ts";
import { obtainToken, sameAnswer, startServeAndCeiling } from "../lib/servers.ts";
import { formatRatio } from "../lib/stats.ts";
import { loadServer, type ServerLoad } from "../lib/wrk.ts";

const CONNECTIONS = 64;
const TARGET = 0.9;
const PATH = "/books?limit=20";

export async function booksScenario(ctx: Context) {
  const { options, report } = ctx;
  const [petbooksPort, ceilingPort] = (await freePorts(2)) as [number, number];
  const env = { DATABASE_URL: ctx.databaseUrl, PUBLIC_URL: "http://127.0.0.1" };
  const servers = await startServeAndCeiling(ctx, env, [petbooksPort, ceilingPort]);
  const headers = { authorization: `Bearer ${await obtainToken(servers.petbooks)}` };
  const body = await sameAnswer(servers.petbooks, servers.ceiling, PATH, headers);
  if (!body.startsWith('{"count":100000')) throw new Error(`not the first page of books: ${body}`);
  progress(`GET ${PATH}: same bytes and headers from both; ${options.rounds} rounds`);
  const databaseCpu = await withSql(ctx.databaseUrl, localPostgresCpu);

  const runs = await interleaved(["petbooks", "ceiling"] as const, options.rounds, (name) =>
    withOthersPaused(servers, name, () =>
      loadServer(servers[name], PATH, {
        connections: CONNECTIONS,
        core: LOAD_CORE,
        headers,
        databaseCpu,
        ...options,
      }),
    ),
  );
  await Promise.all([servers.petbooks.stop(), servers.ceiling.stop()]);

  const ratio = ratioOf(runs.petbooks, runs.ceiling, (r) => r.rps);
  report.judge(
    `GET /books uncached: req/s >= ${TARGET} x same-SQL ceiling`,
    formatRatio(ratio, TARGET),
    anyFailed(runs.petbooks, runs.ceiling) ? undefined : ratio.median >= TARGET,
  );
  report.section(
    "GET /books, uncached",
    `\`GET ${PATH}\` with a bearer token, \`CACHE_TTL=0\` (no cache), 100,000 books; wrk -c` +
      `${CONNECTIONS}. **Ceiling**: bench/ceilings/http.ts, the statements captured from the ` +
      "books repository (one statement whose value is the whole answer, page and count), the " +
      "token checked with src/auth/tokens.ts and the user looked up at most every 5 s, as in " +
      `petbooks; the same bytes (checked). Median of petbooks ${fmt.int(medianOf(runs.petbooks, (r) => r.rps))} ` +
      `req/s, ceiling ${fmt.int(medianOf(runs.ceiling, (r) => r.rps))} req/s; ratio ${formatRatio(ratio, TARGET)}.`,
    runsTable(
      runs,
      loadColumns<ServerLoad>("req/s", (r) => r.rps, cpuColumns),
    ),
  );
}
