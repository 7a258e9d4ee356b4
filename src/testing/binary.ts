/**
 * Builds the real executable once per test run, exactly as `bun run build` does (the same
 * minification and embedded snapshot: what ships is what is tested), and runs it like a user.
 */

import { join } from "node:path";
import { buildExecutable } from "../../scripts/build.ts";
import { type CommandResult, runCommand } from "../../scripts/run-command.ts";
import { makeTempDir } from "./temp.ts";

let built: Promise<string> | undefined;

/**
 * PETBOOKS_TEST_BINARY runs the black-box suites against an executable built elsewhere (an older
 * release, to show which contract cases it fails); by default the tree's own build is tested.
 */
export function buildBinary(): Promise<string> {
  const given = process.env.PETBOOKS_TEST_BINARY;
  if (given) return Promise.resolve(given);
  built ??= (async () => {
    const out = join(makeTempDir("petbooks-bin-"), "petbooks");
    await buildExecutable(out);
    return out;
  })();
  return built;
}

export async function runBinary(
  args: string[],
  env: Record<string, string>,
): Promise<CommandResult> {
  return runCommand([await buildBinary(), ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
  });
}

export interface RunningCommand {
  proc: ReturnType<typeof Bun.spawn>;
  logs: () => string;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/**
 * Its port was taken between freePort() finding it free and the command binding it: another
 * process got there first. The start is tried again on other ports (onFreePorts).
 */
export class PortTakenError extends Error {}

/** How the binary says a port it was given is in use: Bun.serve's words, or Node's for gRPC. */
const PORT_TAKEN = /EADDRINUSE|Is port \d+ in use/;

/**
 * Starts a long-running subcommand and waits until it has logged `listening` `listeners` times
 * (one per server it runs), failing with its logs if it exits or takes too long.
 */
async function startCommand(
  command: string,
  env: Record<string, string>,
  listeners = 1,
): Promise<RunningCommand> {
  const proc = Bun.spawn([await buildBinary(), command], {
    env: { PATH: process.env.PATH ?? "", HOST: "127.0.0.1", ...env },
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  let logs = "";
  const decoder = new TextDecoder();
  const pump = (async () => {
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
      logs += decoder.decode(chunk);
    }
  })();
  // Generous: a first start on a busy machine can take tens of seconds, and this is no speed test.
  const deadline = Date.now() + 120_000;
  while (logs.split('"msg":"listening"').length - 1 < listeners) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill("SIGKILL");
      await proc.exited;
      // Its last words (why it exited) may still be on their way through the pipe.
      await pump;
      const failure = `${command} did not start:\n${logs}`;
      throw PORT_TAKEN.test(logs) ? new PortTakenError(failure) : new Error(failure);
    }
    await Bun.sleep(50);
  }
  return {
    proc,
    logs: () => logs,
    async stop(signal = "SIGTERM") {
      proc.kill(signal);
      const code = await proc.exited;
      await pump;
      return code;
    },
  };
}

/** Where a start gets its ports: free ones (freePort) unless a test gives its own. */
export type PortPicker = () => Promise<number>;

const START_ATTEMPTS = 3;

/**
 * `start` on `count` distinct ports that were free a moment ago, tried again on other ports when
 * one was taken in the meantime (PortTakenError), up to START_ATTEMPTS times in all.
 */
async function onFreePorts<T>(
  count: number,
  pick: PortPicker,
  start: (ports: number[]) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = [];
    while (ports.length < count) {
      const port = await pick();
      if (!ports.includes(port)) ports.push(port);
    }
    try {
      return await start(ports);
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt >= START_ATTEMPTS) throw err;
    }
  }
}

export interface RunningServer extends RunningCommand {
  url: string;
}

/** Starts `petbooks serve` on a free port and waits until it says it listens. */
export function startServer(
  env: Record<string, string>,
  pick: PortPicker = freePort,
): Promise<RunningServer> {
  return onFreePorts(1, pick, async ([port]) => {
    const url = `http://127.0.0.1:${port}`;
    return {
      url,
      ...(await startCommand("serve", { PORT: String(port), PUBLIC_URL: url, ...env })),
    };
  });
}

export async function freePort(): Promise<number> {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = server.port as number;
  await server.stop(true);
  return port;
}

export function tempDataDir(): string {
  return makeTempDir("petbooks-e2e-");
}

export interface RunningGrpcServer extends RunningCommand {
  /** `http://127.0.0.1:port`, for buf curl and Connect clients. */
  url: string;
  /** `127.0.0.1:port`, for grpc-js. */
  address: string;
}

/** Starts `petbooks grpc` on a free port and waits until it says it listens. */
export function startGrpcServer(env: Record<string, string>): Promise<RunningGrpcServer> {
  return onFreePorts(1, freePort, async ([port]) => {
    // METRICS_PORT 0: a free port, never the default 9464 that another test's grpc may hold.
    const running = await startCommand("grpc", {
      GRPC_PORT: String(port),
      METRICS_PORT: "0",
      ...env,
    });
    return { url: `http://127.0.0.1:${port}`, address: `127.0.0.1:${port}`, ...running };
  });
}

export interface RunningDev extends RunningCommand {
  httpUrl: string;
  grpcUrl: string;
}

/** Starts `petbooks dev` (HTTP and gRPC on free ports) and waits until both listen. */
export function startDev(env: Record<string, string>): Promise<RunningDev> {
  return onFreePorts(2, freePort, async ([httpPort, grpcPort]) => {
    const httpUrl = `http://127.0.0.1:${httpPort}`;
    const running = await startCommand(
      "dev",
      { PORT: String(httpPort), GRPC_PORT: String(grpcPort), PUBLIC_URL: httpUrl, ...env },
      2,
    );
    return { httpUrl, grpcUrl: `http://127.0.0.1:${grpcPort}`, ...running };
  });
}
