/**
 * The ceiling of `petbooks serve` for GET /pets and GET /books: Bun.serve and a database client,
 * running exactly the statements petbooks runs for these requests, in the same protocol
 * (captured from its repositories, bench/lib/capture.ts) and answering the same bytes. What
 * it leaves out is what petbooks adds around them: framework, schema validation, Drizzle, request
 * ids, logging, metrics. It checks the same credentials the same way (X-API-KEY in constant time,
 * bearer tokens as in ./auth.ts), and its answers carry the same headers (the security headers
 * and a fresh x-request-id), so that the bytes out are the same. Nor does it do more than petbooks:
 * a page of pets goes out as the bytes PostgreSQL sent, never decoded into a string and encoded
 * again, as petbooks sends it (TextQuery's value); a page of books is text, in both.
 *
 * With DATABASE_URL its client is postgres.js; with DATA_DIR instead, PGlite in this process on
 * that embedded database, as embedded petbooks runs it: the embedded ceiling.
 *
 * Env: DATABASE_URL or DATA_DIR, DATABASE_POOL_SIZE (10), API_KEY, JWT_SECRET, JWT_TTL (3600),
 * PUBLIC_URL, PORT.
 */
import { captureOne, recordingDb, replayRows, type Statement } from "../lib/capture.ts";
import {
  apiKeyChecker,
  createBooksRepository,
  createPetsRepository,
  embeddedStatements,
  PHOTO_ROUTE_PREFIX,
  SECURITY_HEADERS,
} from "../lib/petbooks.ts";
import { bearerAuth, connectPool, env } from "./auth.ts";

const database = process.env.DATABASE_URL ? await postgresDatabase() : await embeddedDatabase();
const apiKeyMatches = apiKeyChecker(env("API_KEY"));
const photoUrlBase = `${env("PUBLIC_URL")}${PHOTO_ROUTE_PREFIX}`;
const recorder = recordingDb();
const petsRepository = createPetsRepository(recorder.db);
const booksRepository = createBooksRepository(recorder.db);
const authenticated = bearerAuth(
  database.run,
  recorder,
  env("JWT_SECRET"),
  Number(env("JWT_TTL", "3600")),
);

/** PostgreSQL at DATABASE_URL through postgres.js, as petbooks serve has it run statements. */
async function postgresDatabase() {
  const sql = await connectPool();
  return {
    run: (statement: Statement, params: unknown[] = []) => replayRows(sql, statement, params),
    /** The answer's bytes as PostgreSQL sent them, as petbooks sends GET /pets' (TextQuery's value). */
    value: async (statement: Statement): Promise<Uint8Array | string | undefined> =>
      (await replayRows(sql, statement).raw())[0]?.[0] ?? undefined,
    close: () => sql.end({ timeout: 5 }),
  };
}

/** The embedded database in DATA_DIR (PGlite), as embedded petbooks has it run statements. */
async function embeddedDatabase() {
  const embedded = await embeddedStatements(env("DATA_DIR"));
  const run = (statement: Statement, params: unknown[] = []) =>
    embedded.run(statement.text, params);
  return {
    run,
    /** PGlite answers text, as embedded petbooks gets it. */
    value: async (statement: Statement): Promise<Uint8Array | string | undefined> =>
      (await run(statement))[0]?.body as string | undefined,
    close: embedded.close,
  };
}

type HasPhotos = boolean | undefined;
const json = (body: Uint8Array | string | undefined) =>
  new Response(body, {
    headers: {
      ...SECURITY_HEADERS,
      "content-type": "application/json;charset=utf-8",
      "x-request-id": crypto.randomUUID(),
    },
  });
const status = (code: number) => new Response(null, { status: code });

/** Each distinct statement text is made once, like petbooks' own cache of rendered pages. */
function memo<K extends unknown[], V>(make: (...key: K) => V): (...key: K) => V {
  const made = new Map<string, V>();
  return (...key) => {
    const id = JSON.stringify(key);
    let value = made.get(id);
    if (value === undefined) {
      value = make(...key);
      made.set(id, value);
    }
    return value;
  };
}

function integer(raw: string | null, fallback: number, max: number): number | undefined {
  if (raw === null) return fallback;
  if (!/^\d{1,10}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n <= max ? n : undefined;
}

function page(params: URLSearchParams) {
  const limit = integer(params.get("limit"), 20, 100);
  const offset = integer(params.get("offset"), 0, 2_147_483_647);
  return limit === undefined || limit < 1 || offset === undefined ? undefined : { limit, offset };
}

const petsPage = memo((limit: number, offset: number, hasPhotos: HasPhotos) =>
  captureOne(recorder, () => petsRepository.listJson({ limit, offset, hasPhotos }, photoUrlBase)),
);

async function listPets(request: Request): Promise<Response> {
  if (!apiKeyMatches(request.headers.get("x-api-key"))) return status(401);
  const params = new URL(request.url).searchParams;
  const range = page(params);
  const raw = params.get("has_photos");
  if (!range || (raw !== null && raw !== "true" && raw !== "false")) return status(422);
  const hasPhotos = raw === null ? undefined : raw === "true";
  // The statement answers the whole body (see the pets repository's listPageQuery).
  return json(await database.value(await petsPage(range.limit, range.offset, hasPhotos)));
}

const booksPage = memo((limit: number, offset: number) =>
  captureOne(recorder, () => booksRepository.listJson({ limit, offset })),
);

async function listBooks(request: Request): Promise<Response> {
  if (!(await authenticated(request.headers.get("authorization")))) return status(401);
  const range = page(new URL(request.url).searchParams);
  if (!range) return status(422);
  // The statement answers the whole body (see the books repository's listQuery).
  const [row] = await database.run(await booksPage(range.limit, range.offset));
  return json(row?.body as string);
}

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(env("PORT")),
  routes: {
    "/pets": { GET: listPets },
    "/books": { GET: listBooks },
  },
  fetch: () => status(404),
});

process.once("SIGTERM", async () => {
  await server.stop();
  await database.close();
  process.exit(0);
});
