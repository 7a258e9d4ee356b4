/**
 * One compiled `petbooks serve` per contract test file, on the database the suite runs on
 * (a fresh PostgreSQL database with DATABASE_URL, the embedded one otherwise), black-box.
 */
import { afterAll, beforeAll, setDefaultTimeout } from "bun:test";
import { rmSync } from "node:fs";
import { type RunningCommand, startServer, tempDataDir } from "../../src/testing/binary.ts";
import { createEmptyPostgresDatabase } from "../../src/testing/database.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../../src/testing/timeouts.ts";

export const CONTRACT_API_KEY = "contract-api-key-0123456789";
export const CONTRACT_JWT_SECRET = "contract-jwt-secret-0123456789-0123456789-abcdef";

export interface ContractServer {
  /** `http://127.0.0.1:port` of the running binary. */
  readonly url: string;
  /** Everything the binary has logged so far. */
  logs(): string;
  /** A request with the API key (pass `apiKey: null` to send none). */
  api(path: string, init?: RequestInit & { apiKey?: string | null }): Promise<Response>;
  /** Registers a fresh user and returns a bearer token for it. */
  bearer(): Promise<string>;
}

/**
 * Starts a compiled command (`start`: startServer, startGrpcServer, startDev) before the tests of
 * the enclosing file or `describe`, on the suite's database (a fresh PostgreSQL database with
 * DATABASE_URL, the embedded one in a new DATA_DIR otherwise), and stops it after, however
 * `beforeAll` ended. `prepare` runs first, with the final environment (to put rows in before the
 * process owns the embedded database). Real work: generous explicit timeouts, no speed assumed.
 */
export function useBinaryCommand<T extends RunningCommand>(
  start: (env: Record<string, string>) => Promise<T>,
  extraEnv: Record<string, string> = {},
  prepare?: (env: Record<string, string>) => Promise<void>,
  /** "embedded": always the embedded database, even when the suite runs on PostgreSQL. */
  database: "suite" | "embedded" = "suite",
): () => T {
  setDefaultTimeout(60_000);
  const dataDir = tempDataDir();
  let command: T | undefined;
  let dropDatabase = async () => {};

  beforeAll(async () => {
    const env: Record<string, string> = {
      API_KEY: CONTRACT_API_KEY,
      JWT_SECRET: CONTRACT_JWT_SECRET,
      DATA_DIR: dataDir,
      LOG_LEVEL: "info",
      ...extraEnv,
    };
    if (process.env.DATABASE_URL && database === "suite") {
      const database = await createEmptyPostgresDatabase();
      env.DATABASE_URL = database.url;
      dropDatabase = database.drop;
    }
    await prepare?.(env);
    command = await start(env);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    if (command && command.proc.exitCode === null) await command.stop("SIGKILL");
    await dropDatabase();
    rmSync(dataDir, { recursive: true, force: true });
  }, TEARDOWN_TIMEOUT_MS);

  return () => {
    if (!command) throw new Error("the command under test did not start (see beforeAll)");
    return command;
  };
}

/** One compiled `petbooks serve` for the file's tests (see useBinaryCommand). */
export function useContractServer(extraEnv: Record<string, string> = {}): ContractServer {
  const running = useBinaryCommand(startServer, extraEnv);
  const api: ContractServer["api"] = (path, init = {}) => {
    const { apiKey = CONTRACT_API_KEY, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (apiKey !== null && !headers.has("x-api-key")) headers.set("x-api-key", apiKey);
    return fetch(`${running().url}${path}`, { ...rest, headers });
  };
  return {
    get url() {
      return running().url;
    },
    logs: () => running().logs(),
    api,
    async bearer() {
      const username = `u${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
      const password = "correct horse battery staple";
      const register = await api("/auth/register", {
        method: "POST",
        apiKey: null,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username, password }),
      });
      if (register.status !== 201) throw new Error(`register: ${register.status}`);
      const token = await api("/auth/token", {
        method: "POST",
        apiKey: null,
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "password", username, password }),
      });
      if (token.status !== 200) throw new Error(`token: ${token.status}`);
      return ((await token.json()) as { access_token: string }).access_token;
    },
  };
}

/** Asserts the RFC 9457 shape every error answer has, and returns it. */
export async function expectProblem(res: Response, status: number) {
  const text = await res.text();
  if (res.status !== status) {
    throw new Error(`expected ${status}, got ${res.status}: ${text.slice(0, 300)}`);
  }
  const type = res.headers.get("content-type") ?? "";
  if (!type.startsWith("application/problem+json")) {
    throw new Error(
      `expected a problem document, got content-type "${type}": ${text.slice(0, 300)}`,
    );
  }
  const body = JSON.parse(text) as Record<string, unknown>;
  for (const key of ["type", "title", "status", "detail", "code", "request_id"]) {
    if (!(key in body)) throw new Error(`problem document without "${key}": ${text}`);
  }
  if (body.status !== status) throw new Error(`problem status ${body.status} != ${status}`);
  if (/\bat \S+ \(|\.ts:\d+/.test(text)) throw new Error(`stack trace in an answer: ${text}`);
  return body as {
    type: string;
    title: string;
    status: number;
    detail: string;
    code: string;
    request_id: string;
    errors?: { path: string; message: string }[];
  };
}
