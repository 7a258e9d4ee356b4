// scratch: the least a Bun server can do for GET /pets?has_photos=false with postgres.js
import postgres from "postgres";
import { CONDITIONING } from "./ceilings/auth.ts";
import { listPageQuery, renderSql, SECURITY_HEADERS } from "./lib/petbooks.ts";

const sql = postgres(process.env.DATABASE_URL!, { max: 3, onnotice: () => {} });
await Promise.all([0, 1, 2].map(() => sql.unsafe(CONDITIONING)));
const text = renderSql(
  listPageQuery({ limit: 20, offset: 0, hasPhotos: false }, `${process.env.PUBLIC_URL}/photos/`),
);
const headers = { ...SECURITY_HEADERS, "content-type": "application/json;charset=utf-8" };
Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT),
  routes: {
    "/pets": async () => {
      const rows = await sql.unsafe(text, [], { prepare: true, simple: false } as never).raw();
      return new Response(rows[0]![0] as Uint8Array, {
        headers: { ...headers, "x-request-id": crypto.randomUUID() },
      });
    },
    "/readyz": () => new Response("ok"),
  },
  fetch: () => new Response(null, { status: 404 }),
});
