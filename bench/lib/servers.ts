/** petbooks (and its ceilings) started for a bench: `serve`, `grpc`, a bearer token. */
import { join } from "node:path";
import { BookService } from "../../src/gen/petbooks/v1/books_pb.ts";
import { API_KEY, JWT_SECRET, type Workspace } from "./context.ts";
import { grpcClient } from "./grpc.ts";
import {
  ALLOCATOR_ENV,
  childEnv,
  freePorts,
  type RunningServer,
  type ServerSpec,
  startServer,
} from "./processes.ts";

export const CEILINGS = join(import.meta.dir, "../ceilings");
/** The HTTP ceiling (GET /pets, GET /books), as a command. */
export const HTTP_CEILING = [process.execPath, join(CEILINGS, "http.ts")];
const USER = { username: "bench-reader", password: "bench reader password" };

/** The environment every petbooks server of the benches gets, `extra` on top. */
export const petbooksEnv = (extra: Record<string, string>) =>
  childEnv({
    ...ALLOCATOR_ENV,
    API_KEY,
    JWT_SECRET,
    JWT_TTL: "3600",
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    ...extra,
  });

const logFile = (ws: Pick<Workspace, "dir">, name: string) =>
  join(ws.dir, `${name.replaceAll(/\W+/g, "-")}.log`);

/**
 * `petbooks serve` (or another `cmd` serving the same API) on core 0 (unless `spec` says
 * otherwise), pool `ws.pool`, no cache unless `env` says otherwise; ready once GET /pets answers
 * our key. Stopped by the cleanup.
 */
export async function startServe(
  ws: Pick<Workspace, "dir" | "cleanup" | "pool" | "binary">,
  name: string,
  port: number,
  env: Record<string, string>,
  cmd = [ws.binary, "serve"],
  spec: Partial<ServerSpec> = {},
): Promise<RunningServer> {
  const server = await startServer({
    name,
    cmd,
    port,
    // No cache: GET /books is compared uncached, and GET /pets has none.
    env: petbooksEnv({
      PORT: String(port),
      CACHE_TTL: "0",
      DATABASE_POOL_SIZE: String(ws.pool),
      ...env,
    }),
    logFile: logFile(ws, name),
    ready: (baseUrl) =>
      fetch(`${baseUrl}/pets?limit=1`, { headers: { "x-api-key": API_KEY } }).then((r) => r.ok),
    ...spec,
  });
  ws.cleanup.defer(server.stop);
  return server;
}

/**
 * `petbooks serve` on PostgreSQL (its own DATA_DIR) and the same-SQL HTTP ceiling beside it, both
 * with `env`, so that their answers can be compared byte for byte.
 */
export async function startServeAndCeiling(
  ws: Pick<Workspace, "dir" | "cleanup" | "pool" | "binary">,
  env: Record<string, string>,
  [port, ceilingPort]: [number, number],
) {
  return {
    petbooks: await startServe(ws, "petbooks serve", port, {
      ...env,
      DATA_DIR: join(ws.dir, "data-postgres"),
    }),
    ceiling: await startServe(ws, "ceiling", ceilingPort, env, HTTP_CEILING),
  };
}

/** `petbooks grpc` (or the gRPC ceiling) on core 0, ready once it answers GetBook of `id`. */
export async function startGrpc(
  ws: Pick<Workspace, "dir" | "cleanup" | "pool" | "databaseUrl">,
  name: string,
  cmd: string[],
  port: number,
  ready: { id: string; authorization: string },
  spec: Partial<ServerSpec> = {},
): Promise<RunningServer> {
  const server = await startServer({
    name,
    cmd,
    port,
    env: petbooksEnv({
      DATABASE_URL: ws.databaseUrl,
      DATABASE_POOL_SIZE: String(ws.pool),
      GRPC_PORT: String(port),
      // Any free port: the default 9464 may be another run's (docs/operations.md).
      METRICS_PORT: "0",
    }),
    logFile: logFile(ws, name),
    ready: async (baseUrl) => {
      const { client, close } = grpcClient(baseUrl, BookService, ready.authorization);
      try {
        return (await client.getBook({ id: ready.id }, { timeoutMs: 1000 })).id === ready.id;
      } finally {
        close();
      }
    },
    ...spec,
  });
  ws.cleanup.defer(server.stop);
  return server;
}

export async function ok(res: Promise<Response>, what: string, also = 0): Promise<Response> {
  const answer = await res;
  if (!answer.ok && answer.status !== also)
    throw new Error(`${what} answered ${answer.status}: ${await answer.text()}`);
  return answer;
}

/** Registers the bench user (unless it exists) and logs in through petbooks' own API. */
export async function obtainToken(server: Pick<RunningServer, "baseUrl">): Promise<string> {
  const post = (path: string, body: string, type: string) =>
    fetch(`${server.baseUrl}${path}`, { method: "POST", headers: { "content-type": type }, body });
  await ok(
    post("/auth/register", JSON.stringify(USER), "application/json"),
    "POST /auth/register",
    409,
  );
  const form = new URLSearchParams({ grant_type: "password", ...USER }).toString();
  const res = await ok(
    post("/auth/token", form, "application/x-www-form-urlencoded"),
    "POST /auth/token",
  );
  return ((await res.json()) as { access_token: string }).access_token;
}

/** "Bearer <token>" of the bench user, from a `serve` started for it on the bench's database. */
export async function bearerToken(ws: Workspace): Promise<string> {
  const [port] = (await freePorts(1)) as [number];
  const serve = await startServe(ws, "petbooks serve (sign-in)", port, {
    DATABASE_URL: ws.databaseUrl,
    PUBLIC_URL: "http://127.0.0.1",
    DATA_DIR: join(ws.dir, "data-postgres"),
  });
  try {
    return `Bearer ${await obtainToken(serve)}`;
  } finally {
    await serve.stop();
  }
}

/** Headers whose values differ from one answer to the next. */
const PER_ANSWER_HEADERS = new Set(["date", "x-request-id"]);

/** The answer's headers as one comparable text: names, and values where they are fixed. */
function headerText(res: Response): string {
  return [...res.headers]
    .map(([name, value]) => (PER_ANSWER_HEADERS.has(name) ? name : `${name}: ${value}`))
    .sort()
    .join("\n");
}

/**
 * GET `path` from petbooks and its ceiling: both must answer 2xx with the same body, byte for
 * byte, and the same headers (same values but for the date and the request id). The body.
 */
export async function sameAnswer(
  petbooks: RunningServer,
  ceiling: RunningServer,
  path: string,
  headers: Record<string, string>,
): Promise<string> {
  const [mine, theirs] = await Promise.all(
    [petbooks, ceiling].map(async (server) => {
      const res = await ok(
        fetch(`${server.baseUrl}${path}`, { headers }),
        `${server.name} ${path}`,
      );
      return { body: await res.text(), headers: headerText(res) };
    }),
  );
  if (mine?.body !== theirs?.body) {
    throw new Error(
      `petbooks and the ceiling answer ${path} differently:\n${mine?.body}\n${theirs?.body}`,
    );
  }
  if (mine?.headers !== theirs?.headers) {
    throw new Error(
      `petbooks and the ceiling answer ${path} with other headers:\n${mine?.headers}\n---\n${theirs?.headers}`,
    );
  }
  return mine?.body ?? "";
}
