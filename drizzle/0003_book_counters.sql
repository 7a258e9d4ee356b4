-- The exact number of books for unfiltered GET /books, kept in the same transaction as every
-- insert and delete (statement-level triggers: one counter update per statement).
INSERT INTO "book_stats" ("id", "total") SELECT 1, count(*) FROM "books"
ON CONFLICT ("id") DO NOTHING;
--> statement-breakpoint
CREATE FUNCTION "books_stats_inserted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "book_stats" SET "total" = "total" + (SELECT count(*) FROM new_rows) WHERE "id" = 1;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION "books_stats_deleted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "book_stats" SET "total" = "total" - (SELECT count(*) FROM old_rows) WHERE "id" = 1;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "books_stats_inserted" AFTER INSERT ON "books"
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "books_stats_inserted"();
--> statement-breakpoint
CREATE TRIGGER "books_stats_deleted" AFTER DELETE ON "books"
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION "books_stats_deleted"();
