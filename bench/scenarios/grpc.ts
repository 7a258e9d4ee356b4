/** gRPC GetBook and ListBooks against a same-SQL connect-node ceiling, with h2load, interleaved. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  BookSchema,
  BookService,
  GetBookRequestSchema,
  ListBooksRequestSchema,
  ListBooksResponseSchema,
} from "../../src/gen/petbooks/v1/books_pb.ts";
import { type Context, progress } from "../lib/context.ts";
import { withSql } from "../lib/database.ts";
import { grpcClient } from "../lib/grpc.ts";
import { grpcFrame, type H2loadResult, type H2loadRun, h2load } from "../lib/h2load.ts";
import {
  cpuMeter,
  cpuSeconds,
  freePorts,
  LOAD_CORE,
  type RunningServer,
  withOthersPaused,
} from "../lib/processes.ts";
import { fmt, loadColumns, markdownTable, runsTable } from "../lib/report.ts";
import { anyFailed, interleaved, medianOf, type Runs, ratioOf, type Timed } from "../lib/rounds.ts";
import { bearerToken, CEILINGS, startGrpc } from "../lib/servers.ts";
import { formatRatio } from "../lib/stats.ts";

const TARGET = 0.9;
const PAGE_SIZE = 50;
const CLIENTS = 8;
const STREAMS = 16;
/** Calls of the check run per server and method: every one must get the OK answer's bytes. */
const CHECK_CALLS = 3_000;
const HEADERS = ["content-type: application/grpc", "te: trailers"];
export const METHODS = ["GetBook", "ListBooks"] as const;
export type Method = (typeof METHODS)[number];

/**
 * What h2load sends to call `method` under load, as a gRPC frame: GetBook of `bookId`, or a first
 * page of ListBooks. Here and in bench/profile.ts --grpc.
 */
export function requestFrame(method: Method, bookId: string): Uint8Array {
  return method === "GetBook"
    ? grpcFrame(toBinary(GetBookRequestSchema, create(GetBookRequestSchema, { id: bookId })))
    : grpcFrame(
        toBinary(ListBooksRequestSchema, create(ListBooksRequestSchema, { pageSize: PAGE_SIZE })),
      );
}

/** h2load calling `method` on `server` with the frame in `dataFile`, as this report loads it. */
export const loadMethod = (
  server: Pick<RunningServer, "baseUrl">,
  method: Method,
  run: Pick<H2loadRun, "dataFile" | "seconds" | "warmupSeconds" | "requests" | "logFile"> & {
    authorization: string;
  },
) =>
  h2load({
    url: `${server.baseUrl}/petbooks.v1.BookService/${method}`,
    headers: [...HEADERS, `authorization: ${run.authorization}`],
    clients: CLIENTS,
    streams: STREAMS,
    core: LOAD_CORE,
    ...run,
  });

/** How loadMethod loads a server, for the reports' text. */
export const GRPC_LOAD_NAME = `h2load -c ${CLIENTS} -m ${STREAMS}`;
const SERVERS = ["petbooks", "ceiling"] as const;

/** GetBook of `id` and two pages of ListBooks, as bytes: the same from both, or no comparison. */
async function answers(server: RunningServer, id: string, authorization: string) {
  const { client, close } = grpcClient(server.baseUrl, BookService, authorization);
  try {
    const book = await client.getBook({ id });
    const first = await client.listBooks({ pageSize: PAGE_SIZE });
    const second = await client.listBooks({ pageSize: PAGE_SIZE, pageToken: first.nextPageToken });
    if (
      book.id !== id ||
      first.books.length !== PAGE_SIZE ||
      second.books[0]?.id === first.books[0]?.id
    ) {
      throw new Error(`${server.name} answered GetBook or ListBooks wrongly`);
    }
    return [
      toBinary(BookSchema, book),
      toBinary(ListBooksResponseSchema, first),
      toBinary(ListBooksResponseSchema, second),
    ].map((bytes) => Buffer.from(bytes));
  } finally {
    close();
  }
}

/** Both servers answering the same bytes; each method's request body in a file, for h2load. */
async function startBoth(ctx: Context) {
  const id = await withSql(ctx.databaseUrl, async (sql) => {
    const [row] = await sql<
      { id: string }[]
    >`select id from books order by id offset 50000 limit 1`;
    if (!row) throw new Error("no book to ask for");
    return row.id;
  });
  const [petbooksPort, ceilingPort] = (await freePorts(2)) as [number, number];
  // BookService wants the REST API's bearer token (GRPC_AUTH=bearer, the default).
  const authorization = await bearerToken(ctx);
  const ready = { id, authorization };
  const servers = {
    petbooks: await startGrpc(ctx, "petbooks grpc", [ctx.binary, "grpc"], petbooksPort, ready),
    ceiling: await startGrpc(
      ctx,
      "grpc ceiling",
      [process.execPath, join(CEILINGS, "grpc.ts")],
      ceilingPort,
      ready,
    ),
  };
  const [mine, theirs] = await Promise.all(
    SERVERS.map((s) => answers(servers[s], id, authorization)),
  );
  if (!mine?.every((bytes, i) => bytes.equals(theirs?.[i] as Buffer))) {
    throw new Error("petbooks and the gRPC ceiling do not answer the same bytes");
  }
  const bodies: Record<Method, { file: string; answerBytes: number }> = {
    GetBook: { file: join(ctx.dir, "get-book.grpc"), answerBytes: 5 + (mine[0]?.length ?? 0) },
    ListBooks: { file: join(ctx.dir, "list-books.grpc"), answerBytes: 5 + (mine[1]?.length ?? 0) },
  };
  for (const method of METHODS) writeFileSync(bodies[method].file, requestFrame(method, id));
  return { servers, authorization, bodies };
}

/** One h2load run, with the server's CPU per call over it. */
type GrpcRun = H2loadResult & { cpuUs: number };

export async function grpcScenario(ctx: Context) {
  const { options, report, dir } = ctx;
  const { servers, authorization, bodies } = await startBoth(ctx);
  const load = (
    name: (typeof SERVERS)[number],
    method: Method,
    run: { seconds: number; requests?: number },
  ) =>
    loadMethod(servers[name], method, {
      dataFile: bodies[method].file,
      authorization,
      warmupSeconds: options.warmup,
      logFile: join(dir, `h2load-${name}-${method}.log`),
      ...run,
    });
  // h2load sees HTTP 200 for a gRPC error too: a counted run, where its byte count is exact,
  // shows that every call got the OK answer. It warms both servers up as well.
  for (const method of METHODS) {
    for (const name of SERVERS) {
      const check = await load(name, method, { seconds: 0, requests: CHECK_CALLS });
      if (
        check.failures > 0 ||
        Math.abs(check.dataBytesPerCall - bodies[method].answerBytes) > 0.001
      ) {
        throw new Error(`${method} on ${name}: not every call got the OK answer`);
      }
    }
  }
  progress(`gRPC: same bytes from both; every one of ${CHECK_CALLS} calls OK on both`);

  const results = {} as Record<Method, Runs<(typeof SERVERS)[number], GrpcRun>>;
  for (const method of METHODS) {
    progress(`gRPC ${method}: ${options.rounds} rounds`);
    results[method] = await interleaved(SERVERS, options.rounds, (name) =>
      withOthersPaused(servers, name, async () => {
        const serverCpu = cpuMeter(() => cpuSeconds(servers[name].pid));
        const run = await load(name, method, { seconds: options.seconds });
        // h2load's warm-up is inside the meter: the calls of the whole run at the measured rate.
        const calls = run.callsPerSecond * (options.warmup + options.seconds);
        return { ...run, cpuUs: serverCpu(calls) };
      }),
    );
  }
  await Promise.all([servers.petbooks.stop(), servers.ceiling.stop()]);

  const rows: string[][] = [];
  const everyRun: Record<string, Timed<GrpcRun>[]> = {};
  for (const method of METHODS) {
    const { petbooks, ceiling } = results[method];
    const ratio = ratioOf(petbooks, ceiling, (x) => x.callsPerSecond);
    report.judge(
      `gRPC ${method}: calls/s >= ${TARGET} x same-SQL ceiling`,
      formatRatio(ratio, TARGET),
      anyFailed(petbooks, ceiling) ? undefined : ratio.median >= TARGET,
    );
    rows.push([
      method,
      fmt.int(medianOf(petbooks, (x) => x.callsPerSecond)),
      fmt.int(medianOf(ceiling, (x) => x.callsPerSecond)),
      formatRatio(ratio, TARGET),
      formatRatio(ratioOf(petbooks, ceiling, (x) => x.p99Ms)),
    ]);
    everyRun[`${method}, petbooks`] = petbooks;
    everyRun[`${method}, ceiling`] = ceiling;
  }
  report.section(
    "gRPC",
    `100,000 books, no cache. \`${GRPC_LOAD_NAME}\` (${CLIENTS * STREAMS} ` +
      "calls in flight), each with a bearer token (GRPC_AUTH=bearer); GetBook asks for one book " +
      `every call (h2load sends one body), ListBooks for a first page of ${PAGE_SIZE}. ` +
      "**Ceiling**: bench/ceilings/grpc.ts, a bare connect-node BookService on node:http2 in Bun " +
      "replaying the statements captured from the books repository, checking the token as " +
      "petbooks does, with the same page tokens; the same bytes (checked, and a counted run " +
      "shows every call got the OK answer). Server CPU: user + system time of the server " +
      "process over the run, its warm-up included, per call at the measured rate.",
    markdownTable(
      [
        "method",
        "petbooks calls/s",
        "ceiling calls/s",
        "petbooks / ceiling",
        "p99 petbooks / ceiling",
      ],
      rows,
    ),
    runsTable(
      everyRun,
      loadColumns("calls/s", (x) => x.callsPerSecond, {
        "server CPU µs/call": (x) => fmt.int(x.cpuUs),
      }),
    ),
  );
}
