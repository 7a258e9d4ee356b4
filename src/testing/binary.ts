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
      proc.kill();
      throw new Error(`${command} did not start:\n${logs}`);
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

export interface RunningServer extends RunningCommand {
  url: string;
}

/** Starts `petbooks serve` on a free port and waits until it says it listens. */
export async function startServer(env: Record<string, string>): Promise<RunningServer> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  return { url, ...(await startCommand("serve", { PORT: String(port), PUBLIC_URL: url, ...env })) };
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
export async function startGrpcServer(env: Record<string, string>): Promise<RunningGrpcServer> {
  const port = await freePort();
  // METRICS_PORT 0: a free port, never the default 9464 that another test's grpc may hold.
  const running = await startCommand("grpc", {
    GRPC_PORT: String(port),
    METRICS_PORT: "0",
    ...env,
  });
  return { url: `http://127.0.0.1:${port}`, address: `127.0.0.1:${port}`, ...running };
}

export interface RunningDev extends RunningCommand {
  httpUrl: string;
  grpcUrl: string;
}

/** Starts `petbooks dev` (HTTP and gRPC on free ports) and waits until both listen. */
export async function startDev(env: Record<string, string>): Promise<RunningDev> {
  const [httpPort, grpcPort] = [await freePort(), await freePort()];
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  const running = await startCommand(
    "dev",
    { PORT: String(httpPort), GRPC_PORT: String(grpcPort), PUBLIC_URL: httpUrl, ...env },
    2,
  );
  return { httpUrl, grpcUrl: `http://127.0.0.1:${grpcPort}`, ...running };
}
