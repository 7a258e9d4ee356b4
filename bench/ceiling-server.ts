/**
 * The ceiling for `GET /pets`: bare Bun.serve and postgres.js answering the same URLs with one
 * reference query for the items only (no count, no framework, no logging). petbooks is measured
 * against what this manages on the same machine, database and pool size.
 *
 * Env: DATABASE_URL, API_KEY, PORT, PUBLIC_URL (photo links), DATABASE_POOL_SIZE (default 10).
 */
import postgres from "postgres";

const LIMIT_DEFAULT = 20;
const LIMIT_MAX = 100;
const OFFSET_MAX = 2_147_483_647;

interface Page {
  limit: number;
  offset: number;
  hasPhotos: boolean | undefined;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const apiKey = required("API_KEY");
const publicUrl = required("PUBLIC_URL");
const sql = postgres(required("DATABASE_URL"), {
  max: Number(process.env.DATABASE_POOL_SIZE ?? 10),
  onnotice: () => {},
});

function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

const photoUrlPrefix = quoteLiteral(`${publicUrl}/photos/`);

/** An integer query parameter within bounds, `fallback` when absent, undefined when invalid. */
function integerParam(raw: string | null, fallback: number, min: number, max: number) {
  if (raw === null) return fallback;
  if (!/^\d{1,10}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n >= min && n <= max ? n : undefined;
}

function parsePage(params: URLSearchParams): Page | undefined {
  const limit = integerParam(params.get("limit"), LIMIT_DEFAULT, 1, LIMIT_MAX);
  const offset = integerParam(params.get("offset"), 0, 0, OFFSET_MAX);
  const raw = params.get("has_photos");
  if (limit === undefined || offset === undefined) return undefined;
  if (raw !== null && raw !== "true" && raw !== "false") return undefined;
  return { limit, offset, hasPhotos: raw === null ? undefined : raw === "true" };
}

function photosFilter(hasPhotos: boolean | undefined): string {
  if (hasPhotos === undefined) return "";
  const exists = "exists (select 1 from pet_photos ph where ph.pet_id = p.id)";
  return hasPhotos ? `where ${exists}` : `where not ${exists}`;
}

/** LIMIT and OFFSET are integers checked by parsePage, so they go in as literals. */
function pageQuery(page: Page): string {
  return `
    select p.id, p.name, p.age, p.type,
      coalesce((
        select json_agg(json_build_object('id', ph.id, 'url', ${photoUrlPrefix} || ph.file_name)
          order by ph.created_at, ph.id)
        from pet_photos ph where ph.pet_id = p.id), '[]'::json) as photos,
      to_char(p.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') as created_at
    from (
      select p.id, p.name, p.age, p.type, p.created_at from pets p
      ${photosFilter(page.hasPhotos)}
      order by p.created_at desc, p.id desc
      limit ${page.limit} offset ${page.offset}
    ) p
    order by p.created_at desc, p.id desc`;
}

async function listPets(request: Request): Promise<Response> {
  if (request.headers.get("x-api-key") !== apiKey) return new Response(null, { status: 401 });
  const page = parsePage(new URL(request.url).searchParams);
  if (!page) return new Response(null, { status: 422 });
  const items = await sql.unsafe(pageQuery(page));
  return Response.json({ items });
}

async function ready(): Promise<Response> {
  await sql`select 1`;
  return new Response("ok");
}

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 3001),
  routes: { "/pets": { GET: listPets }, "/readyz": ready },
  fetch: () => new Response(null, { status: 404 }),
});

process.once("SIGTERM", async () => {
  await server.stop();
  await sql.end({ timeout: 5 });
  process.exit(0);
});
