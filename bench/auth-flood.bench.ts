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
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { runBench } from "./lib/cleanup.ts";
import { integerOption } from "./lib/options.ts";
import { childEnv, ensureBinary, freePorts, stageBinary, stopProcess } from "./lib/processes.ts";
import { table } from "./lib/report.ts";
import { median, spread } from "./lib/stats.ts";

const USAGE = `usage: bun bench/auth-flood.bench.ts [--rounds N] [--seconds S] [--rate R] [--in-flight C]
  --rounds N     interleaved rounds per variant (default 3)
  --seconds S    length of each measured flood, at most 20 (default 4)
  --rate R       logins offered per second (default 100)
  --in-flight C  most logins outstanding at once, at most 512 (default 128)
  --with-one     also measure the queue with one hash at a time`;

interface Options {
  rounds: number;
  seconds: number;
  rate: number;
  inFlight: number;
  withOne: boolean;
}

/** No round starts unless it can end by then (the build aside): the run stays under 2 minutes. */
const DEADLINE_MS = 110_000;
const PROBE_EVERY_MS = 20;
const USERS = 2;
const PASSWORD = "correct horse battery staple";

function parseOptions(argv: string[]): Options | undefined {
  const options: Options = { rounds: 3, seconds: 4, rate: 100, inFlight: 128, withOne: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help") return undefined;
    else if (arg === "--rounds") options.rounds = integerOption(argv[++i] ?? "", "rounds");
    else if (arg === "--seconds") options.seconds = integerOption(argv[++i] ?? "", "seconds");
    else if (arg === "--rate") options.rate = integerOption(argv[++i] ?? "", "rate");
    else if (arg === "--in-flight") options.inFlight = integerOption(argv[++i] ?? "", "in-flight");
    else if (arg === "--with-one") options.withOne = true;
    else throw new Error(`unknown option ${arg}`);
  }
  options.seconds = Math.min(options.seconds, 20);
  options.inFlight = Math.min(options.inFlight, 512);
  return options;
}

interface Variant {
  name: string;
  env: Record<string, string>;
}

const QUEUE: Variant = { name: "queue", env: {} };
const NO_QUEUE: Variant = {
  name: "no queue",
  env: { PASSWORD_HASH_CONCURRENCY: "1024", PASSWORD_HASH_QUEUE: "100000" },
};
const QUEUE_OF_ONE: Variant = { name: "queue of 1", env: { PASSWORD_HASH_CONCURRENCY: "1" } };

interface Server {
  variant: Variant;
  url: string;
  proc: Subprocess;
}

async function startServer(binary: string, variant: Variant, dataDir: string): Promise<Server> {
  const [port] = await freePorts(1);
  const url = `http://127.0.0.1:${port}`;
  const proc = Bun.spawn([binary, "serve"], {
    env: childEnv({
      API_KEY: "bench-api-key-0123456789",
      JWT_SECRET: "bench-jwt-secret-0123456789-0123456789-abcdef",
      DATA_DIR: dataDir,
      HOST: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: "warn",
      // Raised so that every login of the flood is hashed.
      AUTH_USERNAME_FAILURES: "1000000",
      AUTH_ADDRESS_ATTEMPTS: "1000000",
      ...variant.env,
    }),
    stdout: "ignore",
    stderr: "ignore",
  });
  const deadline = performance.now() + 60_000;
  while (performance.now() < deadline) {
    if (proc.exitCode !== null)
      throw new Error(`${variant.name}: serve exited with ${proc.exitCode}`);
    const ok = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { variant, url, proc };
    await Bun.sleep(100);
  }
  proc.kill("SIGKILL");
  throw new Error(`${variant.name}: serve was not ready within 60 s`);
}

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

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;

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
async function round(server: Server, usernames: string[], options: Options): Promise<RoundResult> {
  const idle = await probe(server.url, performance.now() + 1_000);
  const loadBefore = loadavg()[0] as number;
  const started = performance.now();
  const stopAt = started + options.seconds * 1000;
  const statuses: Record<string, number> = {};
  let answered = 0;
  let inFlight = 0;
  const outstanding = new Set<Promise<void>>();
  // Logins still unanswered when the round ends are abandoned: waiting for them is the pile-up
  // being measured, and would only make the bench long. drain() waits for the server instead.
  const abandon = new AbortController();
  const login = (i: number) => {
    inFlight += 1;
    const username = usernames[i % usernames.length] as string;
    const done = fetch(`${server.url}/auth/token`, {
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
          statuses[status] = (statuses[status] ?? 0) + 1;
          answered += 1;
        }
      });
    outstanding.add(done);
    void done.finally(() => outstanding.delete(done));
  };
  // Open loop: the flood arrives at its rate whatever the server answers, up to the cap.
  const flood = (async () => {
    for (let i = 0; performance.now() < stopAt; i++) {
      const due = started + (i * 1000) / options.rate;
      const wait = due - performance.now();
      if (wait > 0) await Bun.sleep(wait);
      if (inFlight < options.inFlight) login(i);
      else statuses["not sent (cap)"] = (statuses["not sent (cap)"] ?? 0) + 1;
    }
  })();
  const latencies = await probe(server.url, stopAt);
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
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");

async function run(options: Options, cleanup: { defer(step: () => unknown): void }) {
  if (await ensureBinary()) console.log("built ./petbooks");
  const begun = performance.now();
  const work = mkdtempSync(join(tmpdir(), "petbooks-auth-flood-"));
  cleanup.defer(() => rmSync(work, { recursive: true, force: true }));
  const binary = stageBinary(work);
  console.log(
    `cores ${availableParallelism()}, ${options.rate} logins/s offered (at most ${options.inFlight} outstanding), ${options.seconds} s per round; load average before: ${load()}`,
  );
  const variants = options.withOne ? [QUEUE, QUEUE_OF_ONE, NO_QUEUE] : [QUEUE, NO_QUEUE];
  let started = 0;
  /** One measurement on a server of its own, killed afterwards with whatever it still holds. */
  const measure = async (variant: Variant) => {
    started += 1;
    const dataDir = join(work, `data-${started}`);
    const server = await startServer(binary, variant, dataDir);
    try {
      return await round(server, await registerUsers(server.url), options);
    } finally {
      await stopProcess(server.proc, 0);
      rmSync(dataDir, { recursive: true, force: true });
    }
  };

  const results = new Map<string, RoundResult[]>(variants.map((v) => [v.name, []]));
  let roundMs = 0;
  for (let r = 0; r < options.rounds; r++) {
    const roundStart = performance.now();
    if (roundStart - begun + roundMs > DEADLINE_MS) {
      console.log(`time is up: stopping after ${r} rounds`);
      break;
    }
    for (const variant of r % 2 === 0 ? variants : [...variants].reverse()) {
      const result = await measure(variant);
      results.get(variant.name)?.push(result);
      console.log(
        `round ${r + 1} ${variant.name.padEnd(10)} healthz p50 ${ms(result.p50)} ms, p99 ${ms(result.p99)} ms (${result.probes} probes; idle p99 ${ms(percentile(result.idle, 99))}); logins ${result.loginsPerSecond.toFixed(1)}/s ${JSON.stringify(result.statuses)}; load ${result.loadBefore.toFixed(2)} -> ${result.loadAfter.toFixed(2)}`,
      );
    }
    roundMs = performance.now() - roundStart;
  }

  const rows = variants.map((v) => {
    const rounds = results.get(v.name) ?? [];
    const p99 = rounds.map((x) => x.p99);
    const p50 = rounds.map((x) => x.p50);
    const rate = rounds.map((x) => x.loginsPerSecond);
    const refused = rounds.map((x) => x.statuses["503"] ?? 0);
    const quiet = rounds.flatMap((x) => x.idle).sort((a, b) => a - b);
    return [
      v.name,
      `${ms(percentile(quiet, 50))} / ${ms(percentile(quiet, 99))}`,
      ms(median(p50)),
      ms(median(p99)),
      spread(p99, ms),
      median(rate).toFixed(1),
      String(median(refused)),
    ];
  });
  console.log(
    `\n/healthz during a login flood (${options.rate}/s offered; medians of ${results.get(QUEUE.name)?.length} rounds; load average ${load()})\n${table(
      ["", "idle p50/p99 ms", "p50 ms", "p99 ms", "p99 min-max", "logins/s", "503s/round"],
      rows,
    )}`,
  );
  console.log(`total ${((performance.now() - begun) / 1000).toFixed(0)} s`);
}

await runBench({ usage: USAGE, parseOptions, run });
