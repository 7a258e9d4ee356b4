/**
 * The ceiling of `petbooks grpc`: a bare connect-node BookService on node:http2 in Bun, running
 * exactly the statements petbooks runs for GetBook and ListBooks (captured from its repository)
 * through postgres.js with the same pool size, and answering the same bytes (the same page
 * tokens, from src/books/page-tokens.ts with the same secret). No interceptors, logging, cache,
 * error mapping, health or reflection service. Bearer tokens are checked as petbooks checks them
 * (./auth.ts).
 *
 * Env: DATABASE_URL, DATABASE_POOL_SIZE (10), JWT_SECRET, JWT_TTL (3600), GRPC_PORT, HOST.
 */
import http2 from "node:http2";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type BookSchema, BookService } from "../../src/gen/petbooks/v1/books_pb.ts";
import { captureOne, recordingDb, replay } from "../lib/capture.ts";
import { createBooksRepository, createPageTokens, pageTokenKey } from "../lib/petbooks.ts";
import { bearerAuth, connectPool, env } from "./auth.ts";

const sql = await connectPool();
const pageTokens = createPageTokens(pageTokenKey(env("JWT_SECRET")));
const recorder = recordingDb();
const repository = createBooksRepository(recorder.db);
const authenticated = bearerAuth(
  (statement, params) => replay(sql, statement, params),
  recorder,
  env("JWT_SECRET"),
  Number(env("JWT_TTL", "3600")),
);
const someId = "00000000-0000-7000-8000-000000000000";

const findById = await captureOne(recorder, () => repository.findById(someId));
const countAll = await captureOne(recorder, () => repository.count());
/** ListBooks' statements by page size (the limit is a literal), with and without a token. */
const listStatements = new Map<string, Awaited<ReturnType<typeof captureOne>>>();
async function listStatement(limit: number, after: boolean) {
  const key = `${limit}:${after}`;
  let statement = listStatements.get(key);
  if (!statement) {
    statement = await captureOne(recorder, () =>
      repository.listAfter({ after: after ? someId : undefined, limit }),
    );
    listStatements.set(key, statement);
  }
  return statement;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
type Row = [string, string, string, string, string, string];

const toBook = (r: Row): MessageInitShape<typeof BookSchema> => ({
  id: r[0],
  title: r[1],
  author: r[2],
  publishedOn: r[3],
  createdAt: timestampFromDate(new Date(r[4])),
  updatedAt: timestampFromDate(new Date(r[5])),
});

const handler = connectNodeAdapter({
  routes: (router) =>
    router.service(BookService, {
      async getBook(request, context) {
        if (!(await authenticated(context.requestHeader.get("authorization")))) {
          throw new ConnectError("unauthenticated", Code.Unauthenticated);
        }
        if (!UUID.test(request.id)) throw new ConnectError("bad id", Code.InvalidArgument);
        const [row] = (await replay(sql, findById, [request.id])) as unknown as Row[];
        if (!row) throw new ConnectError("not found", Code.NotFound);
        return toBook(row);
      },
      async listBooks(request, context) {
        if (!(await authenticated(context.requestHeader.get("authorization")))) {
          throw new ConnectError("unauthenticated", Code.Unauthenticated);
        }
        if (request.pageSize < 0) throw new ConnectError("bad size", Code.InvalidArgument);
        const limit = request.pageSize === 0 ? 50 : Math.min(request.pageSize, 1000);
        const query = { pageSize: limit };
        const after = request.pageToken ? pageTokens.decode(request.pageToken, query) : undefined;
        const list = await listStatement(limit + 1, after !== undefined);
        const [found, stats] = await Promise.all([
          replay(sql, list, after === undefined ? [] : [after]),
          replay(sql, countAll),
        ]);
        const page = (found as unknown as Row[]).slice(0, limit);
        const last = page.at(-1);
        return {
          books: page.map(toBook),
          nextPageToken: found.length > limit && last ? pageTokens.encode(last[0], query) : "",
          totalSize: Number(stats[0]?.[0] ?? 0),
        };
      },
    }),
});

const server = http2.createServer({}, handler);
server.listen(Number(env("GRPC_PORT")), env("HOST", "127.0.0.1"));

process.once("SIGTERM", () => {
  server.close();
  void sql.end({ timeout: 5 }).finally(() => process.exit(0));
});
