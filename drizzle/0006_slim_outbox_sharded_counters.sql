ALTER TABLE "outbox" DROP CONSTRAINT "outbox_event_id_unique";--> statement-breakpoint
ALTER TABLE "book_stats" DROP CONSTRAINT "book_stats_singleton";--> statement-breakpoint
ALTER TABLE "pet_stats" DROP CONSTRAINT "pet_stats_singleton";--> statement-breakpoint
DROP INDEX "outbox_pending_aggregate_idx";--> statement-breakpoint
DROP INDEX "outbox_published_at_idx";--> statement-breakpoint
ALTER TABLE "outbox" ALTER COLUMN "payload" SET DATA TYPE json;--> statement-breakpoint
ALTER TABLE "book_stats" ADD CONSTRAINT "book_stats_shard" CHECK ("book_stats"."id" between 1 and 16);--> statement-breakpoint
ALTER TABLE "pet_stats" ADD CONSTRAINT "pet_stats_shard" CHECK ("pet_stats"."id" between 1 and 16);--> statement-breakpoint
-- Counter shards: every trigger below adds to the row of its own connection, so concurrent writes
-- no longer wait for one another's commit on a single counter row. Counts are sums over the rows.
INSERT INTO "book_stats" ("id", "total") SELECT g, 0 FROM generate_series(1, 16) g
ON CONFLICT ("id") DO NOTHING;
--> statement-breakpoint
INSERT INTO "pet_stats" ("id", "total", "with_photos") SELECT g, 0, 0 FROM generate_series(1, 16) g
ON CONFLICT ("id") DO NOTHING;
--> statement-breakpoint
CREATE FUNCTION "counter_shard"() RETURNS smallint LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT (1 + pg_backend_pid() % 16)::smallint $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "books_stats_inserted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "book_stats" SET "total" = "total" + (SELECT count(*) FROM new_rows)
  WHERE "id" = "counter_shard"();
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "books_stats_deleted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "book_stats" SET "total" = "total" - (SELECT count(*) FROM old_rows)
  WHERE "id" = "counter_shard"();
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "pets_stats_inserted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "pet_stats" SET
    "total" = "total" + (SELECT count(*) FROM new_rows),
    "with_photos" = "with_photos" + (SELECT count(*) FROM new_rows WHERE "photo_count" > 0)
  WHERE "id" = "counter_shard"();
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "pets_stats_updated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "pet_stats" SET "with_photos" = "with_photos"
    + (SELECT count(*) FROM new_rows WHERE "photo_count" > 0)
    - (SELECT count(*) FROM old_rows WHERE "photo_count" > 0)
  WHERE "id" = "counter_shard"();
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "pets_stats_deleted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "pet_stats" SET
    "total" = "total" - (SELECT count(*) FROM old_rows),
    "with_photos" = "with_photos" - (SELECT count(*) FROM old_rows WHERE "photo_count" > 0)
  WHERE "id" = "counter_shard"();
  RETURN NULL;
END $$;
