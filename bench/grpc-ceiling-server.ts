/**
 * The ceiling for the gRPC benchmark (bench/grpc.bench.ts): a bare connect-node BookService on
 * node:http2 in Bun that runs the same SQL text as petbooks (src/books/books.repository.ts, as
 * Drizzle renders it) through postgres.js with the same pool size, and answers the same bytes.
 * No interceptors, no logging, no cache, no error mapping, no health or reflection service.
 *
 * Env: DATABASE_URL, GRPC_PORT (default 50052), HOST (default 127.0.0.1), DATABASE_POOL_SIZE
 * (default 10, as petbooks).
 */
import http2 from "node:http2";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import postgres from "postgres";
import { type BookSchema, BookService } from "../src/gen/petbooks/v1/books_pb.ts";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL is required");
const sql = postgres(url, {
  max: Number(process.env.DATABASE_POOL_SIZE ?? 10),
  connect_timeout: 10,
  onnotice: () => {},
  connection: { application_name: "petbooks-grpc-ceiling" },
});

/** The select list of the repository's snapshotColumns, verbatim as Drizzle sends it. */
const COLUMNS =
  `select "id", "title", "author", "published_on"::text, ` +
  `to_char("created_at" at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), ` +
  `to_char("updated_at" at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') from "books"`;
/**
 * findById: a named prepared statement, as Drizzle's .prepare() makes it. The others have no
 * parameters, so postgres.js sends them, as for petbooks, with the simple query protocol.
 */
const FIND_BY_ID = `${COLUMNS} where "books"."id" = $1`;
/** listAfter without a token; the limit is a literal (page + 1), as integerLiteral inlines it. */
const listFirst = (limit: number) => `${COLUMNS} order by "books"."id" desc limit ${limit}`;
const listAfter = (limit: number) =>
  `${COLUMNS} where "books"."id" < $1::uuid order by "books"."id" desc limit ${limit}`;
/** count({}) without filters: the trigger-kept counter shards. */
const COUNT = `select sum("total") as "total" from "book_stats"`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PAGE_SIZE_DEFAULT = 50;
const PAGE_SIZE_MAX = 1000;

type Row = [string, string, string, string, string, string];

const toBook = (r: Row): MessageInitShape<typeof BookSchema> => ({
  id: r[0],
  title: r[1],
  author: r[2],
  publishedOn: r[3],
  createdAt: timestampFromDate(new Date(r[4])),
  updatedAt: timestampFromDate(new Date(r[5])),
});

/** The same opaque token petbooks issues: a version byte and the 16 bytes of the last id. */
const pageToken = (id: string) =>
  Buffer.concat([Buffer.of(1), Buffer.from(id.replaceAll("-", ""), "hex")]).toString("base64url");

function tokenId(token: string): string {
  const bytes = Buffer.from(token, "base64url");
  if (bytes.length !== 17 || bytes[0] !== 1) {
    throw new ConnectError("page_token is not valid", Code.InvalidArgument);
  }
  const hex = bytes.subarray(1).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const handler = connectNodeAdapter({
  routes: (router) =>
    router.service(BookService, {
      async getBook(request) {
        if (!UUID.test(request.id)) throw new ConnectError("bad id", Code.InvalidArgument);
        const rows = await sql.unsafe(FIND_BY_ID, [request.id], { prepare: true }).values();
        const row = rows[0] as Row | undefined;
        if (!row) throw new ConnectError("not found", Code.NotFound);
        return toBook(row);
      },
      async listBooks(request) {
        const size = request.pageSize <= 0 ? PAGE_SIZE_DEFAULT : request.pageSize;
        const limit = Math.min(size, PAGE_SIZE_MAX);
        const rows =
          request.pageToken === ""
            ? sql.unsafe(listFirst(limit + 1)).values()
            : sql
                .unsafe(listAfter(limit + 1), [tokenId(request.pageToken)], { prepare: false })
                .values();
        const [found, stats] = await Promise.all([rows, sql.unsafe(COUNT).values()]);
        const page = (found as unknown as Row[]).slice(0, limit);
        const last = page.at(-1);
        return {
          books: page.map(toBook),
          nextPageToken: found.length > limit && last ? pageToken(last[0]) : "",
          totalSize: Number(stats[0]?.[0] ?? 0),
        };
      },
    }),
});

const server = http2.createServer({}, handler);
server.listen(Number(process.env.GRPC_PORT ?? 50052), process.env.HOST ?? "127.0.0.1");

process.once("SIGTERM", () => {
  server.close();
  void sql.end({ timeout: 5 }).finally(() => process.exit(0));
});
