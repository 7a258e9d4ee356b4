-- Exact counters kept in the same transaction as every write, so GET /pets never runs count(*).
-- pets.photo_count follows pet_photos; pet_stats follows pets. Statement-level triggers with
-- transition tables touch each counter once per statement, however many rows it changed.
INSERT INTO "pet_stats" ("id", "total", "with_photos")
SELECT 1, count(*), count(*) FILTER (WHERE "photo_count" > 0) FROM "pets"
ON CONFLICT ("id") DO NOTHING;
--> statement-breakpoint
CREATE FUNCTION "pet_photos_count_added"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "pets" AS p SET "photo_count" = p."photo_count" + n.added
  FROM (SELECT "pet_id", count(*) AS added FROM new_rows GROUP BY "pet_id") AS n
  WHERE p."id" = n."pet_id";
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION "pet_photos_count_removed"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- When the pet itself is being deleted (ON DELETE CASCADE) its row is already gone: no-op.
  UPDATE "pets" AS p SET "photo_count" = p."photo_count" - o.removed
  FROM (SELECT "pet_id", count(*) AS removed FROM old_rows GROUP BY "pet_id") AS o
  WHERE p."id" = o."pet_id";
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION "pets_stats_inserted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "pet_stats" SET
    "total" = "total" + (SELECT count(*) FROM new_rows),
    "with_photos" = "with_photos" + (SELECT count(*) FROM new_rows WHERE "photo_count" > 0)
  WHERE "id" = 1;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION "pets_stats_updated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "pet_stats" SET "with_photos" = "with_photos"
    + (SELECT count(*) FROM new_rows WHERE "photo_count" > 0)
    - (SELECT count(*) FROM old_rows WHERE "photo_count" > 0)
  WHERE "id" = 1;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION "pets_stats_deleted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "pet_stats" SET
    "total" = "total" - (SELECT count(*) FROM old_rows),
    "with_photos" = "with_photos" - (SELECT count(*) FROM old_rows WHERE "photo_count" > 0)
  WHERE "id" = 1;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "pet_photos_count_added" AFTER INSERT ON "pet_photos"
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "pet_photos_count_added"();
--> statement-breakpoint
CREATE TRIGGER "pet_photos_count_removed" AFTER DELETE ON "pet_photos"
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION "pet_photos_count_removed"();
--> statement-breakpoint
CREATE TRIGGER "pets_stats_inserted" AFTER INSERT ON "pets"
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "pets_stats_inserted"();
--> statement-breakpoint
CREATE TRIGGER "pets_stats_updated" AFTER UPDATE ON "pets"
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION "pets_stats_updated"();
--> statement-breakpoint
CREATE TRIGGER "pets_stats_deleted" AFTER DELETE ON "pets"
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION "pets_stats_deleted"();
