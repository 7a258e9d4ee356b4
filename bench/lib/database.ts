/** The benches' own PostgreSQL databases: created fresh, seeded with set-based SQL, dropped after. */
import postgres from "postgres";
import { commandOf, parentPid, treeCpuSeconds } from "./processes.ts";

/** Share of seeded pets that get photos (1 to 3 each); the issue asks for a quarter to a third. */
export const PHOTO_SHARE = 0.3;

const serverUrl = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
/** Only databases of this shape are ever created or dropped here. */
const OWN_DATABASE = /^petbooks_bench[a-z0-9_]*$/;

export function databaseUrl(name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export function connect(url: string, max = 1): postgres.Sql {
  return postgres(url, { max, onnotice: () => {} });
}

export async function withSql<T>(url: string, work: (sql: postgres.Sql) => Promise<T>) {
  const sql = connect(url);
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

const isPostgresProcess = (pid: number) => commandOf(pid)?.startsWith("postgres") ?? false;

/**
 * The CPU seconds so far of the PostgreSQL server `sql` is connected to, every process of it,
 * when it runs on this machine (its backend and that backend's parent are postgres processes
 * here); undefined otherwise.
 */
export async function localPostgresCpu(sql: postgres.Sql): Promise<(() => number) | undefined> {
  const [row] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
  const backend = Number(row?.pid);
  const postmaster = parentPid(backend);
  if (!isPostgresProcess(backend) || postmaster === undefined || !isPostgresProcess(postmaster)) {
    return undefined;
  }
  return () => treeCpuSeconds(postmaster);
}

function own(name: string): string {
  if (!OWN_DATABASE.test(name)) throw new Error(`not a bench database: ${name}`);
  return name;
}

/** Drops and creates `name`; returns its URL. */
export async function recreateDatabase(name: string): Promise<string> {
  await withSql(serverUrl, async (sql) => {
    await sql.unsafe(`drop database if exists ${own(name)} with (force)`);
    await sql.unsafe(`create database ${own(name)}`);
  });
  return databaseUrl(name);
}

export const dropDatabase = (name: string) =>
  withSql(serverUrl, (sql) => sql.unsafe(`drop database if exists ${own(name)} with (force)`));

function integer(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a count: ${n}`);
  return String(n);
}

/**
 * The statements (one transaction) that add `count` pets created over the last three years,
 * PHOTO_SHARE of them with 1 to 3 photos, for PostgreSQL and the embedded database alike. Rows go
 * in oldest first, as a live table fills up, so the newest-first index walks the table in order.
 * Photos go in as one statement, so the statement-level triggers update photo_count and
 * pet_stats once. The photo files themselves are not needed to list or export.
 */
export function petSeedStatements(count: number): string[] {
  return [
    `create temp table new_pets on commit drop as
      select gen_random_uuid() as id,
        (array['Rex','Bella','Max','Luna','Charlie','Lucy','Milo','Daisy','Oscar','Coco'])
          [1 + floor(random() * 10)::int] || ' ' || g as name,
        floor(random() * 51)::smallint as age,
        (case when random() < 0.5 then 'dog' else 'cat' end)::pet_type as type,
        now() - random() * interval '3 years' as created_at,
        case when random() < ${PHOTO_SHARE} then 1 + floor(random() * 3)::int else 0 end as photos
      from generate_series(1, ${integer(count)}) g`,
    `insert into pets (id, name, age, type, created_at)
      select id, name, age, type, created_at from new_pets order by created_at, id`,
    `insert into pet_photos (id, pet_id, file_name, content_type, size_bytes, created_at)
      select gen_random_uuid(), p.id,
        substr(translate(encode(uuid_send(gen_random_uuid()), 'base64'), '+/', '-_'), 1, 22)
          || '.jpg',
        'image/jpeg', 20000 + floor(random() * 2000000)::int,
        p.created_at + k * interval '1 minute'
      from new_pets p cross join generate_series(1, p.photos) k
      order by p.created_at, p.id, k`,
  ];
}

export async function seedPets(sql: postgres.Sql, count: number): Promise<void> {
  await sql.begin(async (tx) => {
    for (const statement of petSeedStatements(count)) await tx.unsafe(statement);
  });
  // The photo_count updates leave a dead tuple per pet with photos; plan on clean tables.
  await sql.unsafe("vacuum analyze pets, pet_photos");
}

export async function petCounts(sql: postgres.Sql) {
  const [row] = await sql<{ pets: string; with_photos: string; photos: string }[]>`
    select sum(total) as pets, sum(with_photos) as with_photos,
      (select count(*) from pet_photos) as photos
    from pet_stats`;
  return {
    pets: Number(row?.pets ?? 0),
    withPhotos: Number(row?.with_photos ?? 0),
    photos: Number(row?.photos ?? 0),
  };
}

/**
 * Adds `n` books in one statement (so the statement-level trigger bumps book_stats once), created
 * over the last three years and updated some time after, by 5,000 different authors.
 */
export async function seedBooks(sql: postgres.Sql, n: number): Promise<void> {
  await sql.unsafe(`
    insert into books (id, title, author, published_on, created_at, updated_at)
    select gen_random_uuid(), 'Book number ' || g, 'Author ' || (g % 5000),
      date '1900-01-01' + floor(random() * 45000)::int, c, c + random() * (now() - c)
    from (select g, now() - random() * interval '3 years' as c
          from generate_series(1, ${integer(n)}) g) s`);
  await sql.unsafe("vacuum analyze books");
}
