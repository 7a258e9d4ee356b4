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
import { type Context, JWT_SECRET, progress } from "../lib/context.ts";
import { withSql } from "../lib/database.ts";
import { grpcClient } from "../lib/grpc.ts";
import { grpcFrame, type H2loadResult, h2load } from "../lib/h2load.ts";
import {
  childEnv,
  freePorts,
  LOAD_CORE,
  type RunningServer,
  startPinnedServer,
} from "../lib/processes.ts";
import { fmt, markdownTable, runsTable } from "../lib/report.ts";
import { interleaved, type Timed } from "../lib/rounds.ts";
import { formatRatio, median, pairedRatio } from "../lib/stats.ts";
import { obtainToken } from "./books.ts";
import { startHttp } from "./pets.ts";

const TARGET = 0.9;
const PAGE_SIZE = 50;
const CLIENTS = 8;
const STREAMS = 16;
/** Calls of the check run per server and method: every one must get the OK answer's bytes. */
const CHECK_CALLS = 3_000;
const HEADERS = ["content-type: application/grpc", "te: trailers"];
const METHODS = ["GetBook", "ListBooks"] as const;
type Method = (typeof METHODS)[number];

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

export async function grpcScenario(ctx: Context) {
  const { options, report, dir } = ctx;
  const id = await withSql(ctx.databaseUrl, async (sql) => {
    const [row] = await sql<
      { id: string }[]
    >`select id from books order by id offset 50000 limit 1`;
    if (!row) throw new Error("no book to ask for");
    return row.id;
  });
  const [petbooksPort, ceilingPort, servePort] = (await freePorts(3)) as [number, number, number];
  // BookService wants the REST API's bearer token (GRPC_AUTH=bearer, the default).
  const serve = await startHttp(ctx, "petbooks serve", [ctx.binary, "serve"], servePort, {
    DATABASE_URL: ctx.databaseUrl,
    PUBLIC_URL: "http://127.0.0.1",
    DATA_DIR: join(dir, "data-postgres"),
  });
  const authorization = `Bearer ${await obtainToken(serve)}`;
  await serve.stop();
  const start = async (name: string, cmd: string[], port: number) => {
    const server = await startPinnedServer({
      name,
      cmd,
      port,
      env: childEnv({
        DATABASE_URL: ctx.databaseUrl,
        DATABASE_POOL_SIZE: String(options.pool),
        JWT_SECRET,
        JWT_TTL: "3600",
        HOST: "127.0.0.1",
        GRPC_PORT: String(port),
        LOG_LEVEL: "warn",
      }),
      logFile: join(dir, `${name.replaceAll(/\W+/g, "-")}.log`),
      ready: async (baseUrl) => {
        const { client, close } = grpcClient(baseUrl, BookService, authorization);
        try {
          return (await client.getBook({ id }, { timeoutMs: 1000 })).id === id;
        } finally {
          close();
        }
      },
    });
    ctx.cleanup.defer(server.stop);
    return server;
  };
  const servers = {
    petbooks: await start("petbooks grpc", [ctx.binary, "grpc"], petbooksPort),
    ceiling: await start(
      "grpc ceiling",
      [process.execPath, join(import.meta.dir, "../ceilings/grpc.ts")],
      ceilingPort,
    ),
  };
  const [mine, theirs] = await Promise.all([
    answers(servers.petbooks, id, authorization),
    answers(servers.ceiling, id, authorization),
  ]);
  if (!mine.every((bytes, i) => bytes.equals(theirs[i] as Buffer))) {
    throw new Error("petbooks and the gRPC ceiling do not answer the same bytes");
  }
  const expectedBytes: Record<Method, number> = {
    GetBook: 5 + (mine[0]?.length ?? 0),
    ListBooks: 5 + (mine[1]?.length ?? 0),
  };
  const bodies: Record<Method, string> = {
    GetBook: join(dir, "get-book.grpc"),
    ListBooks: join(dir, "list-books.grpc"),
  };
  writeFileSync(
    bodies.GetBook,
    grpcFrame(toBinary(GetBookRequestSchema, create(GetBookRequestSchema, { id }))),
  );
  writeFileSync(
    bodies.ListBooks,
    grpcFrame(
      toBinary(ListBooksRequestSchema, create(ListBooksRequestSchema, { pageSize: PAGE_SIZE })),
    ),
  );

  const load = (
    name: keyof typeof servers,
    method: Method,
    run: { seconds: number; requests?: number },
  ) =>
    h2load({
      url: `${servers[name].baseUrl}/petbooks.v1.BookService/${method}`,
      dataFile: bodies[method],
      headers: [...HEADERS, `authorization: ${authorization}`],
      clients: CLIENTS,
      streams: STREAMS,
      warmupSeconds: options.warmup,
      core: LOAD_CORE,
      logFile: join(dir, `h2load-${name}-${method}.log`),
      ...run,
    });
  // h2load sees HTTP 200 for a gRPC error too: a counted run, where its byte count is exact,
  // shows that every call got the OK answer. It warms both servers up as well.
  for (const method of METHODS) {
    for (const name of ["petbooks", "ceiling"] as const) {
      const check = await load(name, method, { seconds: 0, requests: CHECK_CALLS });
      if (check.failures > 0 || Math.abs(check.dataBytesPerCall - expectedBytes[method]) > 0.001) {
        throw new Error(`${method} on ${name}: not every call got the OK answer`);
      }
    }
  }
  progress(`gRPC: same bytes from both; every one of ${CHECK_CALLS} calls OK on both`);

  const results = {} as Record<Method, Record<"petbooks" | "ceiling", Timed<H2loadResult>[]>>;
  for (const method of METHODS) {
    progress(`gRPC ${method}: ${options.rounds} rounds`);
    results[method] = await interleaved(["petbooks", "ceiling"] as const, options.rounds, (name) =>
      load(name, method, { seconds: options.seconds }),
    );
  }
  await Promise.all([servers.petbooks.stop(), servers.ceiling.stop()]);

  const rows: string[][] = [];
  const everyRun: Record<string, Timed<H2loadResult>[]> = {};
  for (const method of METHODS) {
    const r = results[method];
    const of = (name: "petbooks" | "ceiling", key: "callsPerSecond" | "p99Ms") =>
      r[name].map((x) => x.result[key]);
    const ratio = pairedRatio(of("petbooks", "callsPerSecond"), of("ceiling", "callsPerSecond"));
    const failed = [...r.petbooks, ...r.ceiling].some((x) => x.result.failures > 0);
    report.judge(
      `gRPC ${method}: calls/s >= ${TARGET} x same-SQL ceiling`,
      formatRatio(ratio),
      failed ? undefined : ratio.median >= TARGET,
    );
    rows.push([
      method,
      fmt.int(median(of("petbooks", "callsPerSecond"))),
      fmt.int(median(of("ceiling", "callsPerSecond"))),
      formatRatio(ratio),
      formatRatio(pairedRatio(of("petbooks", "p99Ms"), of("ceiling", "p99Ms"))),
    ]);
    everyRun[`${method}, petbooks`] = r.petbooks;
    everyRun[`${method}, ceiling`] = r.ceiling;
  }
  report.section(
    "gRPC",
    `100,000 books, no cache. \`h2load -c ${CLIENTS} -m ${STREAMS}\` (${CLIENTS * STREAMS} ` +
      "calls in flight), each with a bearer token (GRPC_AUTH=bearer); GetBook asks for one book " +
      `every call (h2load sends one body), ListBooks for a first page of ${PAGE_SIZE}. ` +
      "**Ceiling**: bench/ceilings/grpc.ts, a bare connect-node BookService on node:http2 in Bun " +
      "replaying the statements captured from the books repository, checking the token as " +
      "petbooks does, with the same page tokens; the same bytes (checked, and a counted run " +
      "shows every call got the OK answer).",
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
    runsTable(everyRun, {
      "calls/s": (x) => fmt.int(x.callsPerSecond),
      "p50 ms": (x) => fmt.ms(x.p50Ms),
      "p99 ms": (x) => fmt.ms(x.p99Ms),
      failed: (x) => String(x.failures),
    }),
  );
}
