/**
 * Scale-out, black-box: two compiled `serve` replicas on different ports and data dirs, sharing
 * one PostgreSQL database, Redis and an S3-compatible bucket (s3rver on loopback), as a team
 * running several replicas behind a load balancer would.
 *
 * Needs DATABASE_URL and REDIS_URL (CI's PostgreSQL leg sets both): the embedded database admits
 * one process, and per-replica in-memory caches are not meant to be shared.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { createS3Client } from "../src/storage/s3-photo-storage.ts";
import {
  freePort,
  type RunningServer,
  runBinary,
  startServer,
  tempDataDir,
} from "../src/testing/binary.ts";
import { createEmptyPostgresDatabase } from "../src/testing/database.ts";
import { newPet, pngBytes } from "../src/testing/factories.ts";
import { contains, GPS_LATITUDE_BYTES, jpegWithMetadata } from "../src/testing/photo-fixtures.ts";
import { redisTestPrefix } from "../src/testing/redis-keys.ts";
import { startTestS3Server, type TestS3Server } from "../src/testing/s3.ts";
import { SETUP_TIMEOUT_MS } from "../src/testing/timeouts.ts";

const API_KEY = "replicas-api-key-0123456789";
const JWT_SECRET = "replicas-jwt-secret-0123456789-0123456789-abcdef";
const databaseUrl = process.env.DATABASE_URL;
const redisUrl = process.env.REDIS_URL;

describe.skipIf(!databaseUrl || !redisUrl)(
  "two serve replicas on one PostgreSQL, Redis and bucket (needs DATABASE_URL and REDIS_URL)",
  () => {
    setDefaultTimeout(60_000);
    let s3: TestS3Server;
    let database: Awaited<ReturnType<typeof createEmptyPostgresDatabase>>;
    let sql: postgres.Sql;
    const dataDirs = { a: tempDataDir(), b: tempDataDir() };
    let a: RunningServer;
    let b: RunningServer;
    /** Book writes made through either replica: each writes exactly one outbox event. */
    let bookWrites = 0;
    let token = "";
    const bearer = (init: RequestInit = {}) => ({
      ...init,
      headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` },
    });
    const book = { title: "Round 0", author: "Replica Tester", published_on: "2001-02-03" };

    beforeAll(async () => {
      s3 = await startTestS3Server();
      database = await createEmptyPostgresDatabase();
      const env = {
        API_KEY,
        JWT_SECRET,
        DATABASE_URL: database.url,
        REDIS_URL: redisUrl as string,
        // Keys of their own, removed after the run (the default prefix would be left behind).
        REDIS_KEY_PREFIX: redisTestPrefix(),
        // The relays log how many events they hand to their transport (at debug level).
        LOG_LEVEL: "debug",
        ...s3.env,
      };
      // One after the other: the first applies the migrations, the second finds them applied.
      a = await startServer({ ...env, DATA_DIR: dataDirs.a });
      b = await startServer({ ...env, DATA_DIR: dataDirs.b });
      sql = postgres(database.url, { max: 1, onnotice: () => {} });
    }, SETUP_TIMEOUT_MS);

    afterAll(async () => {
      for (const server of [a, b]) {
        if (server && server.proc.exitCode === null) await server.stop("SIGTERM");
      }
      await sql?.end();
      await database?.drop();
      await s3?.close();
    }, SETUP_TIMEOUT_MS);

    const api = (server: RunningServer, path: string, init: RequestInit = {}) => {
      const headers = new Headers(init.headers);
      headers.set("x-api-key", API_KEY);
      return fetch(`${server.url}${path}`, { ...init, headers });
    };
    const json = (body: unknown) => ({
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

    async function createPet(server: RunningServer): Promise<string> {
      const res = await api(server, "/pets", { method: "POST", ...json(newPet()) });
      expect(res.status).toBe(201);
      return ((await res.json()) as { id: string }).id;
    }

    async function upload(server: RunningServer, petId: string, bytes: Uint8Array) {
      const form = new FormData();
      form.append("file", new File([bytes as Uint8Array<ArrayBuffer>], "photo.bin"));
      const res = await api(server, `/pets/${petId}/photo`, { method: "POST", body: form });
      expect(res.status).toBe(201);
      return (await res.json()) as { id: string; url: string };
    }

    /** The same path on another replica: links are PUBLIC_URL-based, and each has its own. */
    const on = (server: RunningServer, url: string) => `${server.url}${new URL(url).pathname}`;
    const bytesAt = async (url: string) =>
      new Uint8Array(await (await fetch(url)).arrayBuffer()) as Uint8Array<ArrayBuffer>;
    const objectKey = (url: string) => `photos/${new URL(url).pathname.split("/").pop()}`;

    test("a photo uploaded through A is served by B byte for byte, from the bucket", async () => {
      const petId = await createPet(a);
      const png = pngBytes([12, 34, 56], 32) as Uint8Array<ArrayBuffer>;
      const photo = await upload(a, petId, png);
      expect(photo.url.startsWith(`${a.url}/photos/`)).toBe(true);
      const fromB = await fetch(on(b, photo.url));
      expect(fromB.status).toBe(200);
      expect(fromB.headers.get("content-type")).toBe("image/png");
      expect(new Uint8Array(await fromB.arrayBuffer())).toEqual(png);
      // Neither replica keeps a copy on its own disk: the bucket holds it.
      for (const dir of Object.values(dataDirs)) {
        const photos = join(dir, "photos");
        const local = (() => {
          try {
            return readdirSync(photos);
          } catch {
            return [];
          }
        })();
        expect(local).toEqual([]);
      }
      expect(await createS3Client(s3.config).exists(objectKey(photo.url))).toBe(true);

      // The validators and ranges agree between replicas.
      const etag = fromB.headers.get("etag") as string;
      expect((await fetch(on(a, photo.url))).headers.get("etag")).toBe(etag);
      const cached = await fetch(on(a, photo.url), { headers: { "if-none-match": etag } });
      expect(cached.status).toBe(304);
      const part = await fetch(on(b, photo.url), { headers: { range: "bytes=0-7" } });
      expect(part.status).toBe(206);
      expect(new Uint8Array(await part.arrayBuffer())).toEqual(png.slice(0, 8));
    });

    test("a phone photo's GPS never reaches the bucket; both replicas serve the same bytes", async () => {
      const petId = await createPet(b);
      const jpeg = await jpegWithMetadata(32, 16);
      expect(contains(jpeg, GPS_LATITUDE_BYTES)).toBe(true);
      const photo = await upload(b, petId, jpeg);
      const [fromA, fromB] = [await bytesAt(on(a, photo.url)), await bytesAt(on(b, photo.url))];
      expect(fromA).toEqual(fromB);
      expect(contains(fromA, GPS_LATITUDE_BYTES)).toBe(false);
      const stored = await createS3Client(s3.config).file(objectKey(photo.url)).bytes();
      expect(stored).toEqual(fromA);
      const image = new Bun.Image(fromA);
      await image.png().bytes();
      expect([image.width, image.height]).toEqual([32, 16]);
    });

    test("deleting through B removes the photo for A, and from the bucket", async () => {
      const petId = await createPet(a);
      const photo = await upload(a, petId, pngBytes([1, 2, 3], 8));
      expect((await fetch(on(a, photo.url))).status).toBe(200);
      const res = await api(b, "/pets", { method: "DELETE", ...json({ ids: [petId] }) });
      expect(await res.json()).toEqual({ deleted: 1, errors: [] });
      const gone = await fetch(on(a, photo.url));
      expect(gone.status).toBe(404);
      await gone.arrayBuffer();
      expect(await createS3Client(s3.config).exists(objectKey(photo.url))).toBe(false);
      const pending = await sql`select file_name from pending_object_deletions`;
      expect(pending.length).toBe(0);
    });

    test("a book updated through A reads fresh through B, every time", async () => {
      const username = `r${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
      const password = "correct horse battery staple";
      const register = await fetch(`${a.url}/auth/register`, {
        method: "POST",
        ...json({ username, password }),
      });
      expect(register.status).toBe(201);
      // Logged in on B: tokens work on every replica (one JWT_SECRET).
      const login = await fetch(`${b.url}/auth/token`, {
        method: "POST",
        body: new URLSearchParams({ grant_type: "password", username, password }),
      });
      token = ((await login.json()) as { access_token: string }).access_token;
      const created = await fetch(`${a.url}/books`, bearer({ method: "POST", ...json(book) }));
      expect(created.status).toBe(201);
      bookWrites++;
      const { id } = (await created.json()) as { id: string };
      for (let round = 1; round <= 20; round++) {
        // B reads (and caches) the book, A changes it, B must see the change at once.
        expect((await fetch(`${b.url}/books/${id}`, bearer())).status).toBe(200);
        const title = `Round ${round}`;
        const put = await fetch(
          `${a.url}/books/${id}`,
          bearer({ method: "PUT", ...json({ ...book, title }) }),
        );
        expect(put.status).toBe(200);
        bookWrites++;
        const read = (await (await fetch(`${b.url}/books/${id}`, bearer())).json()) as {
          title: string;
        };
        expect(read.title).toBe(title);
      }
      // And the other way round, through the list.
      const patched = await fetch(
        `${b.url}/books/${id}`,
        bearer({ method: "PATCH", ...json({ title: "Last" }) }),
      );
      expect(patched.status).toBe(200);
      bookWrites++;
      const list = (await (await fetch(`${a.url}/books?limit=100`, bearer())).json()) as {
        items: { id: string; title: string }[];
      };
      expect(list.items.find((item) => item.id === id)?.title).toBe("Last");
    });

    test("both relays run, and no event is published twice (or lost)", async () => {
      // Nothing here reads Kafka (there is none): what is read back is what each relay says it
      // handed to its transport (the `events published` counts it logs), against the outbox.
      const published = (server: RunningServer) =>
        server
          .logs()
          .split("\n")
          .filter((line) => line.includes('"msg":"events published"'))
          .reduce((sum, line) => sum + (JSON.parse(line) as { count: number }).count, 0);
      const outbox = async () => {
        const [row = { total: -1, pending: -1 }] = await sql<{ total: number; pending: number }[]>`
          select count(*)::int as total,
                 (count(*) filter (where published_at is null))::int as pending
          from outbox`;
        return row;
      };
      /** Until nothing is pending and the logs account for every row (a line follows a commit). */
      const settled = async () => {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const { total, pending } = await outbox();
          const logged = published(a) + published(b);
          if (logged > total - pending) return; // more than published: the assertions say so
          if (pending === 0 && logged === total) return;
          if (Date.now() > deadline)
            throw new Error(`not settled: ${pending} pending, ${logged} of ${total} logged`);
          await Bun.sleep(100);
        }
      };
      // Bursts of writes through both replicas at once, until each relay has published some
      // (each wakes on its own replica's writes, so the first burst almost always does it).
      for (let burst = 0; burst < 10; burst++) {
        await Promise.all(
          Array.from({ length: 40 }, async (_, i) => {
            const res = await fetch(
              `${(i % 2 ? a : b).url}/books`,
              bearer({ method: "POST", ...json({ ...book, title: `Burst ${burst}.${i}` }) }),
            );
            expect(res.status).toBe(201);
            bookWrites++;
          }),
        );
        await settled();
        if (published(a) > 0 && published(b) > 0) break;
      }
      const { total, pending } = await outbox();
      expect(pending).toBe(0);
      expect(total).toBe(bookWrites);
      // Every row published, and exactly as many events handed over as there are rows: none
      // went out twice. And both relays took part.
      expect(published(a) + published(b)).toBe(total);
      expect(published(a)).toBeGreaterThan(0);
      expect(published(b)).toBeGreaterThan(0);
    });
  },
);

describe("serve with S3_BUCKET, one replica on the embedded database", () => {
  setDefaultTimeout(60_000);
  let s3: TestS3Server;
  let server: RunningServer;
  beforeAll(async () => {
    s3 = await startTestS3Server("embedded-bucket");
    server = await startServer({ API_KEY, JWT_SECRET, DATA_DIR: tempDataDir(), ...s3.env });
  }, SETUP_TIMEOUT_MS);
  afterAll(async () => {
    if (server && server.proc.exitCode === null) await server.stop("SIGTERM");
    await s3?.close();
  }, SETUP_TIMEOUT_MS);

  test("upload, serve and delete go through the bucket", async () => {
    const headers = { "x-api-key": API_KEY };
    const created = await fetch(`${server.url}/pets`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify(newPet()),
    });
    const { id } = (await created.json()) as { id: string };
    const form = new FormData();
    const png = pngBytes([5, 6, 7], 4) as Uint8Array<ArrayBuffer>;
    form.append("file", new File([png], "p.png"));
    const res = await fetch(`${server.url}/pets/${id}/photo`, {
      method: "POST",
      headers,
      body: form,
    });
    expect(res.status).toBe(201);
    const { url } = (await res.json()) as { url: string };
    const key = `photos/${new URL(url).pathname.split("/").pop()}`;
    expect(await createS3Client(s3.config).file(key).bytes()).toEqual(png);
    expect(new Uint8Array(await (await fetch(url)).arrayBuffer())).toEqual(png);
    const head = await fetch(url, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(png.length));
    const deleted = await fetch(`${server.url}/pets`, {
      method: "DELETE",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ ids: [id] }),
    });
    expect(await deleted.json()).toEqual({ deleted: 1, errors: [] });
    expect(await createS3Client(s3.config).exists(key)).toBe(false);
  });

  test("a bucket that stays out of reach stops serve with one line, naming no secret", async () => {
    const secret = "an-s3-secret-nobody-may-read-0123";
    const run = await runBinary(["serve"], {
      API_KEY,
      JWT_SECRET,
      DATA_DIR: tempDataDir(),
      HOST: "127.0.0.1",
      PORT: "0",
      ...s3.env,
      // Nothing listens on a port just freed: refused at once, five tries with backoff (7.5 s), then out.
      S3_ENDPOINT: `http://127.0.0.1:${await freePort()}`,
      S3_SECRET_ACCESS_KEY: secret,
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("photo storage (S3_BUCKET) cannot be used");
    expect(`${run.stdout}${run.stderr}`).not.toContain(secret);
  });
});
