/** Builds the real executable once per test run and runs it like a user would. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
let built: Promise<string> | undefined;

export function buildBinary(): Promise<string> {
  built ??= (async () => {
    const out = join(mkdtempSync(join(tmpdir(), "petbooks-bin-")), "petbooks");
    const proc = Bun.spawn(["bun", "build", "--compile", "src/main.ts", "--outfile", out], {
      cwd: root,
      stdout: "pipe",
      stderr: "pipe",
    });
    if ((await proc.exited) !== 0) {
      throw new Error(`build failed: ${await new Response(proc.stderr).text()}`);
    }
    return out;
  })();
  return built;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runBinary(args: string[], env: Record<string, string>): Promise<RunResult> {
  const proc = Bun.spawn([await buildBinary(), ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

export interface RunningServer {
  url: string;
  proc: ReturnType<typeof Bun.spawn>;
  logs: () => string;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** Starts `petbooks serve` on a free port and waits until it says it listens. */
export async function startServer(env: Record<string, string>): Promise<RunningServer> {
  const port = await freePort();
  const proc = Bun.spawn([await buildBinary(), "serve"], {
    env: {
      PATH: process.env.PATH ?? "",
      PORT: String(port),
      HOST: "127.0.0.1",
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      ...env,
    },
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
  const deadline = Date.now() + 30_000;
  while (!logs.includes('"msg":"listening"')) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill();
      throw new Error(`serve did not start:\n${logs}`);
    }
    await Bun.sleep(50);
  }
  return {
    url: `http://127.0.0.1:${port}`,
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

async function freePort(): Promise<number> {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = server.port as number;
  await server.stop(true);
  return port;
}

export function tempDataDir(): string {
  return mkdtempSync(join(tmpdir(), "petbooks-e2e-"));
}

export interface RunningGrpcServer {
  /** `http://127.0.0.1:port`, for buf curl and Connect clients. */
  url: string;
  /** `127.0.0.1:port`, for grpc-js. */
  address: string;
  proc: ReturnType<typeof Bun.spawn>;
  logs: () => string;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** Starts `petbooks grpc` on a free port and waits until it says it listens. */
export async function startGrpcServer(env: Record<string, string>): Promise<RunningGrpcServer> {
  const port = await freePort();
  const proc = Bun.spawn([await buildBinary(), "grpc"], {
    env: { PATH: process.env.PATH ?? "", GRPC_PORT: String(port), HOST: "127.0.0.1", ...env },
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
  const deadline = Date.now() + 30_000;
  while (!logs.includes('"msg":"listening"')) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill();
      throw new Error(`grpc did not start:\n${logs}`);
    }
    await Bun.sleep(50);
  }
  return {
    url: `http://127.0.0.1:${port}`,
    address: `127.0.0.1:${port}`,
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
