/**
 * Does a flood of logins starve other requests? /healthz latency while wrong passwords for many
 * usernames (half of them unknown) arrive at a fixed rate (`--rate` per second, open loop, at
 * most `--in-flight` outstanding so the bench itself stays bounded), against the compiled `serve`
 * configured two ways (three with --with-one):
 *
 * - queue: hashing bounded as shipped (PASSWORD_HASH_CONCURRENCY = cores, the default queue and
 *   wait): excess logins wait a little, then get 503;
 * - no queue: PASSWORD_HASH_CONCURRENCY=1024, every login hashed as soon as it arrives;
 * - queue of 1 (--with-one): the queue with one hash at a time.
 *
 * All on the embedded database, with the rate limits raised so that every login is hashed. Each
 * measurement starts a fresh server (new DATA_DIR, two users registered, /healthz measured idle
 * for a second) and kills it afterwards, so a backlog of logins left over from one measurement
 * cannot slow the next. Rounds interleave the variants (A B, B A, …) so that a change of machine
 * load favours none. A measurement reports /healthz p50/p99 (one probe every 20 ms, sequential),
 * logins answered per second with their statuses, and the 1-minute load average before and after.
 * Medians and spreads (min-max) over rounds. Bounded: no round starts unless it can end within
 * 110 s of the start (the build aside), so a run stays under 2 minutes.
 */
import { rmSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { runBench } from "./lib/cleanup.ts";
import { openWorkspace } from "./lib/context.ts";
import { loadAverage } from "./lib/machine.ts";
import type { Options } from "./lib/options.ts";
import { freePorts, type RunningServer, startServer } from "./lib/processes.ts";
import { table } from "./lib/report.ts";
import { figures, interleaved, type Timed } from "./lib/rounds.ts";
import { petbooksEnv } from "./lib/servers.ts";
import { median, upperPercentile as percentile, spread } from "./lib/stats.ts";

const OPTIONS = {
  rounds: { int: 3, help: "interleaved rounds per variant" },
  seconds: { int: 4, max: 20, help: "length of each measured flood, at most 20" },
  rate: { int: 100, help: "logins offered per second" },
  inFlight: { int: 128, max: 512, help: "most logins outstanding at once, at most 512" },
  withOne: { flag: true, help: "also measure the queue with one hash at a time" },
} as const;
type Flood = Options<typeof OPTIONS>;

/** No round starts unless it can end by then (the build aside): the run stays under 2 minutes. */
const DEADLINE_MS = 110_000;
const PROBE_EVERY_MS = 20;
const USERS = 2;
const PASSWORD = "correct horse battery staple";

const VARIANTS: Record<string, Record<string, string>> = {
  queue: {},
  "queue of 1": { PASSWORD_HASH_CONCURRENCY: "1" },
  "no queue": { PASSWORD_HASH_CONCURRENCY: "1024", PASSWORD_HASH_QUEUE: "100000" },
};

async function registerUsers(url: string): Promise<string[]> {
  const names = Array.from({ length: USERS }, (_, i) => `flood_${i}`);
  for (const username of names) {
    const res = await fetch(`${url}/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password: PASSWORD }),
    });
    if (res.status !== 201) throw new Error(`register: ${res.status} ${await res.text()}`);
  }
  // Half the flood goes to usernames that do not exist (a dummy hash is checked for them).
  return [...names, ...names.map((n) => `${n}_unknown`)];
}

interface RoundResult {
  idle: number[];
  p50: number;
  p99: number;
  probes: number;
  loginsPerSecond: number;
  statuses: Record<string, number>;
  loadBefore: number;
  loadAfter: number;
}

/** /healthz latencies, probed one after the other every 20 ms until `stopAt`. */
async function probe(url: string, stopAt: number): Promise<number[]> {
  const latencies: number[] = [];
  while (performance.now() < stopAt) {
    const started = performance.now();
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(30_000) });
    await res.arrayBuffer();
    latencies.push(performance.now() - started);
    await Bun.sleep(PROBE_EVERY_MS);
  }
  return latencies.sort((a, b) => a - b);
}

/** `seconds` of flood against one server while /healthz is probed. */
async function round(url: string, usernames: string[], options: Flood): Promise<RoundResult> {
  const idle = await probe(url, performance.now() + 1_000);
  const loadBefore = loadavg()[0] as number;
  const started = performance.now();
  const stopAt = started + options.seconds * 1000;
  const statuses: Record<string, number> = {};
  const count = (status: string) => {
    statuses[status] = (statuses[status] ?? 0) + 1;
  };
  let answered = 0;
  let inFlight = 0;
  const outstanding = new Set<Promise<void>>();
  // Logins still unanswered when the round ends are abandoned: waiting for them is the pile-up
  // being measured, and would only make the bench long. drain() waits for the server instead.
  const abandon = new AbortController();
  const login = (i: number) => {
    inFlight += 1;
    const username = usernames[i % usernames.length] as string;
    const done = fetch(`${url}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", username, password: `wrong ${i}` }),
      signal: AbortSignal.any([abandon.signal, AbortSignal.timeout(60_000)]),
    })
      .then(
        async (res) => {
          await res.arrayBuffer();
          return String(res.status);
        },
        () => "error",
      )
      .then((status) => {
        inFlight -= 1;
        // Answers after the measured window (queued logins finishing) are not counted.
        if (performance.now() <= stopAt) {
          count(status);
          answered += 1;
        }
      });
    outstanding.add(done);
    void done.finally(() => outstanding.delete(done));
  };
  // Open loop: the flood arrives at its rate whatever the server answers, up to the cap.
  const flood = (async () => {
    for (let i = 0; performance.now() < stopAt; i++) {
      const wait = started + (i * 1000) / options.rate - performance.now();
      if (wait > 0) await Bun.sleep(wait);
      if (inFlight < options.inFlight) login(i);
      else count("not sent (cap)");
    }
  })();
  const latencies = await probe(url, stopAt);
  await flood;
  abandon.abort();
  await Promise.all(outstanding);
  return {
    idle,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    probes: latencies.length,
    loginsPerSecond: answered / options.seconds,
    statuses,
    loadBefore,
    loadAfter: loadavg()[0] as number,
  };
}

const ms = (n: number) => n.toFixed(1);

/** The table of medians over the rounds, one row per variant. */
function summary(runs: Record<string, Timed<RoundResult>[]>, options: Flood): string {
  const rows = Object.entries(runs).map(([name, rounds]) => {
    const p99 = figures(rounds, (x) => x.p99);
    const quiet = rounds.flatMap((x) => x.result.idle).sort((a, b) => a - b);
    return [
      name,
      `${ms(percentile(quiet, 50))} / ${ms(percentile(quiet, 99))}`,
      ms(median(figures(rounds, (x) => x.p50))),
      ms(median(p99)),
      spread(p99, ms),
      median(figures(rounds, (x) => x.loginsPerSecond)).toFixed(1),
      String(median(figures(rounds, (x) => x.statuses["503"] ?? 0))),
    ];
  });
  return `\n/healthz during a login flood (${options.rate}/s offered; medians of ${runs.queue?.length} rounds; load average ${loadAverage()})\n${table(
    ["", "idle p50/p99 ms", "p50 ms", "p99 ms", "p99 min-max", "logins/s", "503s/round"],
    rows,
  )}`;
}

await runBench({
  script: "bench/auth-flood.bench.ts",
  options: OPTIONS,
  run: async (options, cleanup) => {
    const ws = await openWorkspace(cleanup, { name: "auth-flood" });
    const begun = performance.now();
    console.log(
      `cores ${availableParallelism()}, ${options.rate} logins/s offered (at most ${options.inFlight} outstanding), ${options.seconds} s per round; load average before: ${loadAverage()}`,
    );
    const variants = options.withOne ? ["queue", "queue of 1", "no queue"] : ["queue", "no queue"];
    let started = 0;
    /** One measurement on a server of its own, killed afterwards with whatever it still holds. */
    const measure = async (variant: string, r: number) => {
      const dataDir = join(ws.dir, `data-${++started}`);
      const [port] = (await freePorts(1)) as [number];
      let server: RunningServer | undefined;
      try {
        server = await startServer({
          name: `${variant}: serve`,
          cmd: [ws.binary, "serve"],
          port,
          core: null,
          logFile: "/dev/null",
          env: petbooksEnv({
            DATA_DIR: dataDir,
            PORT: String(port),
            // Raised so that every login of the flood is hashed.
            AUTH_USERNAME_FAILURES: "1000000",
            AUTH_ADDRESS_ATTEMPTS: "1000000",
            ...VARIANTS[variant],
          }),
        });
        const result = await round(server.baseUrl, await registerUsers(server.baseUrl), options);
        console.log(
          `round ${r} ${variant.padEnd(10)} healthz p50 ${ms(result.p50)} ms, p99 ${ms(result.p99)} ms (${result.probes} probes; idle p99 ${ms(percentile(result.idle, 99))}); logins ${result.loginsPerSecond.toFixed(1)}/s ${JSON.stringify(result.statuses)}; load ${result.loadBefore.toFixed(2)} -> ${result.loadAfter.toFixed(2)}`,
        );
        return result;
      } finally {
        await server?.stop(0);
        rmSync(dataDir, { recursive: true, force: true });
      }
    };
    let roundStart = begun;
    let roundMs = 0;
    const runs = await interleaved(variants, options.rounds, measure, (r) => {
      if (r > 1) roundMs = performance.now() - roundStart;
      roundStart = performance.now();
      if (roundStart - begun + roundMs <= DEADLINE_MS) return true;
      console.log(`time is up: stopping after ${r - 1} rounds`);
      return false;
    });
    console.log(summary(runs, options));
    console.log(`total ${((performance.now() - begun) / 1000).toFixed(0)} s`);
  },
});
