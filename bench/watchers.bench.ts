/**
 * WatchBooks under load, in one run: many concurrent watchers on one gRPC server while books are
 * written over REST.
 *
 *   bun bench/watchers.bench.ts [--watchers 1000] [--rate 20] [--seconds 20] [--writers 16]
 *
 * One `petbooks dev` process (compiled from the current sources; embedded database, in-process
 * events: no Kafka broker here, so serve, the relay and the gRPC server share one process, and
 * the fan-out competes with the writes for its core), pinned to core 0; this script (the REST
 * client and every watcher, spread over HTTP/2 connections of 100 streams) on core 1. Phases:
 * 1. write throughput without watchers: `--writers` POST /books in a closed loop, `--seconds`/2;
 * 2. `--watchers` WatchBooks streams opened; the server's RSS before and after, per watcher;
 * 3. latency: POST /books at a steady `--rate` per second for `--seconds`; for each book, the time
 *    from its REST answer reaching this script to its event reaching each watcher (negative when
 *    the event is faster than the answer), p50/p99 over every (book, watcher) pair;
 * 4. write throughput again, the watchers connected (streams that fall behind are closed with
 *    RESOURCE_EXHAUSTED, as they would be in production: their number is reported).
 */
import http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Health } from "../src/gen/grpc/health/v1/health_pb.ts";
import {
  type BookEvent,
  BookEventType,
  WatchBooksResponseSchema,
} from "../src/gen/petbooks/v1/books_pb.ts";
import { runBench } from "./lib/cleanup.ts";
import { openWorkspace, progress } from "./lib/context.ts";
import { grpcClient } from "./lib/grpc.ts";
import { loadAverage } from "./lib/machine.ts";
import { cpuSeconds, freePorts, rssMb, startServer } from "./lib/processes.ts";
import { obtainToken, petbooksEnv } from "./lib/servers.ts";
import { percentile } from "./lib/stats.ts";

const STREAMS_PER_CONNECTION = 100;

const json = (body: unknown, authorization?: string) => ({
  method: "POST",
  headers: {
    "content-type": "application/json",
    ...(authorization && { authorization }),
  },
  body: JSON.stringify(body),
});

let titles = 0;
const newBook = () => ({
  title: `Watched ${++titles}`,
  author: "Bench",
  published_on: "2001-02-03",
});

/** POST /books in a closed loop by `writers` clients for `ms`: books per second. */
async function writeThroughput(
  baseUrl: string,
  authorization: string,
  writers: number,
  ms: number,
) {
  const end = performance.now() + ms;
  let written = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (performance.now() < end) {
        const res = await fetch(`${baseUrl}/books`, json(newBook(), authorization));
        await res.arrayBuffer();
        if (res.status === 201) written += 1;
        else failed += 1;
      }
    }),
  );
  return { perSecond: written / (ms / 1000), failed };
}

/**
 * One WatchBooks call on a raw HTTP/2 stream, its gRPC frames decoded by hand: a thousand
 * Connect clients' async iterators cost this script more than the server's fan-out costs it.
 */
function watchRaw(
  session: http2.ClientHttp2Session,
  authorization: string,
  handlers: { onEvent(event: BookEvent): void; onEnd(status: string): void },
) {
  const stream = session.request({
    ":method": "POST",
    ":path": "/petbooks.v1.BookService/WatchBooks",
    "content-type": "application/grpc",
    te: "trailers",
    authorization,
  });
  // An empty WatchBooksRequest: flags 0, length 0.
  stream.end(Buffer.alloc(5));
  let pending: Buffer = Buffer.alloc(0);
  let status = "ended";
  stream.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 5) {
      const length = pending.readUInt32BE(1);
      if (pending.length < 5 + length) break;
      const response = fromBinary(WatchBooksResponseSchema, pending.subarray(5, 5 + length));
      pending = pending.subarray(5 + length);
      if (response.event) handlers.onEvent(response.event);
    }
  });
  stream.on("trailers", (trailers) => {
    status = `grpc-status ${trailers["grpc-status"]}`;
  });
  stream.on("error", () => {
    status = "error";
  });
  let closing = false;
  stream.on("close", () => handlers.onEnd(closing ? "cancelled" : status));
  return {
    close() {
      closing = true;
      stream.close(http2.constants.NGHTTP2_CANCEL);
    },
  };
}

await runBench({
  script: "bench/watchers.bench.ts",
  options: {
    watchers: { int: 1000, help: "WatchBooks streams" },
    rate: { int: 20, help: "POST /books per second in the latency phase" },
    seconds: { int: 20, help: "length of the latency phase; each throughput phase is half" },
    writers: { int: 16, help: "closed-loop writers in the throughput phases" },
  },
  run: async (options, cleanup) => {
    const loadAtStart = loadAverage();
    // Last of the cleanup steps: the binary (130 MB) and the database go once the server is down.
    const { dir, binary } = await openWorkspace(cleanup, { name: "watchers-bench" });
    const [httpPort, grpcPort] = (await freePorts(2)) as [number, number];
    const server = await startServer({
      name: "petbooks dev",
      cmd: [binary, "dev"],
      port: httpPort,
      env: petbooksEnv({
        PORT: String(httpPort),
        GRPC_PORT: String(grpcPort),
        DATA_DIR: dir,
        // The consumer's line per event and the rpc lines are not what is measured (warn), and
        // the sign-ins below are the bench's own.
        AUTH_ADDRESS_ATTEMPTS: "100000",
      }),
      logFile: `${dir}/dev.log`,
    });
    cleanup.defer(() => server.stop());
    const grpcUrl = `http://127.0.0.1:${grpcPort}`;
    const authorization = `Bearer ${await obtainToken(server)}`;
    const health = grpcClient(grpcUrl, Health);
    cleanup.defer(health.close);
    while (
      !(await health.client.check({}).then(
        () => true,
        () => false,
      ))
    )
      await Bun.sleep(100);

    // Warm-up: the statements prepared, the JIT settled.
    await writeThroughput(server.baseUrl, authorization, options.writers, 3_000);

    progress("phase 1: write throughput without watchers");
    const throughputMs = (options.seconds * 1000) / 2;
    const without = await writeThroughput(
      server.baseUrl,
      authorization,
      options.writers,
      throughputMs,
    );

    progress(`phase 2: opening ${options.watchers} watchers`);
    await Bun.sleep(1000);
    const rssBefore = rssMb(server.pid) ?? Number.NaN;
    const connections = Math.ceil(options.watchers / STREAMS_PER_CONNECTION);
    const sessions = Array.from({ length: connections }, () => http2.connect(grpcUrl));
    cleanup.defer(() => {
      for (const session of sessions) session.destroy();
    });
    /** Book id -> when each watcher received its created event (ms, this process' clock). */
    const receipts = new Map<string, Float64Array>();
    const receiptsOf = (bookId: string) => {
      let row = receipts.get(bookId);
      if (!row) {
        row = new Float64Array(options.watchers).fill(Number.NaN);
        receipts.set(bookId, row);
      }
      return row;
    };
    let opened = 0;
    const closedBy = new Map<string, number>();
    const streams = Array.from({ length: options.watchers }, (_, index) =>
      watchRaw(sessions[index % connections] as http2.ClientHttp2Session, authorization, {
        onEvent(event) {
          if (event.type === BookEventType.CREATED && event.book) {
            receiptsOf(event.book.id)[index] = performance.now();
          }
        },
        onEnd(status) {
          if (status !== "cancelled") closedBy.set(status, (closedBy.get(status) ?? 0) + 1);
        },
      }),
    );
    // A stream is open once an event reaches it: write until every watcher got one.
    for (;;) {
      const res = await fetch(`${server.baseUrl}/books`, json(newBook(), authorization));
      const { id } = (await res.json()) as { id: string };
      await Bun.sleep(200);
      opened = Array.from(receiptsOf(id)).filter((t) => !Number.isNaN(t)).length;
      if (opened === options.watchers) break;
      // A stream closed before its first event never opens: say so instead of waiting forever.
      if (closedBy.size > 0) {
        throw new Error(`streams closed while opening: ${JSON.stringify([...closedBy])}`);
      }
      console.error(`  ${opened}/${options.watchers} streams open`);
    }
    receipts.clear();
    await Bun.sleep(2000);
    const rssAfter = rssMb(server.pid) ?? Number.NaN;

    progress(`phase 3: ${options.rate} POST /books per second for ${options.seconds} s`);
    const answeredAt = new Map<string, number>();
    const cpuBefore = cpuSeconds(server.pid);
    const started = performance.now();
    const writes: Promise<void>[] = [];
    for (let i = 0; i < options.rate * options.seconds; i++) {
      const due = started + (i * 1000) / options.rate;
      const wait = due - performance.now();
      if (wait > 0) await Bun.sleep(wait);
      writes.push(
        fetch(`${server.baseUrl}/books`, json(newBook(), authorization)).then(async (res) => {
          const { id } = (await res.json()) as { id: string };
          answeredAt.set(id, performance.now());
        }),
      );
    }
    await Promise.all(writes);
    const steadyCpu = (cpuSeconds(server.pid) - cpuBefore) / ((performance.now() - started) / 1000);
    // Events still in flight: a few seconds at most.
    await Bun.sleep(3000);
    const latencies: number[] = [];
    let missing = 0;
    for (const [bookId, answered] of answeredAt) {
      const row = receipts.get(bookId);
      for (let w = 0; w < options.watchers; w++) {
        const received = row?.[w] ?? Number.NaN;
        if (Number.isNaN(received)) missing += 1;
        else latencies.push(received - answered);
      }
    }
    latencies.sort((a, b) => a - b);
    const rssSteady = rssMb(server.pid) ?? Number.NaN;

    progress("phase 4: write throughput with the watchers connected");
    const withWatchers = await writeThroughput(
      server.baseUrl,
      authorization,
      options.writers,
      throughputMs,
    );
    const dropped = [...closedBy].map(([why, n]) => `${n} (${why})`).join(", ") || "none";
    for (const stream of streams) stream.close();

    const ms = (n: number) => `${n.toFixed(1)} ms`;
    console.log(
      [
        `petbooks dev, embedded database, in-process events; ${options.watchers} watchers over ${connections} HTTP/2 connections`,
        `load average at start ${loadAtStart}, at the end ${loadAverage()}`,
        "",
        `write throughput without watchers: ${without.perSecond.toFixed(0)} books/s (${options.writers} writers, ${throughputMs / 1000} s, ${without.failed} failed)`,
        `write throughput with ${options.watchers} watchers: ${withWatchers.perSecond.toFixed(0)} books/s (${withWatchers.failed} failed); streams closed meanwhile: ${dropped}`,
        `REST answer -> watcher receipt at ${options.rate} writes/s for ${options.seconds} s: p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))}, max ${ms(latencies.at(-1) ?? Number.NaN)} (${latencies.length} receipts, ${missing} missing)`,
        `server CPU during the steady phase: ${(steadyCpu * 100).toFixed(0)}% of a core`,
        `server RSS: ${rssBefore.toFixed(1)} MB before the watchers, ${rssAfter.toFixed(1)} MB with them idle (${(((rssAfter - rssBefore) * 1024) / options.watchers).toFixed(1)} KiB per watcher), ${rssSteady.toFixed(1)} MB after the steady phase`,
      ].join("\n"),
    );
    return missing === 0 ? 0 : 1;
  },
});
