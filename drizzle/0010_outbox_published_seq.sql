CREATE SEQUENCE "public"."outbox_published_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1;--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "published_seq" bigint;--> statement-breakpoint
CREATE UNIQUE INDEX "outbox_published_seq_idx" ON "outbox" USING btree ("published_seq") WHERE "outbox"."published_seq" is not null;--> statement-breakpoint
CREATE INDEX "outbox_unsequenced_idx" ON "outbox" USING btree ("published_at","id") WHERE "outbox"."published_at" is not null and "outbox"."published_seq" is null;--> statement-breakpoint
-- Hand-written (drizzle-kit cannot express it): the rows published before this migration get
-- their place in publication order, (published_at, id) as the relays published them, and the
-- sequence continues after them. Rows an older relay publishes meanwhile are numbered later by a
-- new relay (outbox.repository.ts `claimBatch`, stragglers).
UPDATE "outbox" SET "published_seq" = "numbered"."seq"
FROM (
  SELECT "id", row_number() OVER (ORDER BY "published_at", "id") AS "seq"
  FROM "outbox" WHERE "published_at" IS NOT NULL
) AS "numbered"
WHERE "outbox"."id" = "numbered"."id";--> statement-breakpoint
SELECT setval('"public"."outbox_published_seq"', coalesce((SELECT max("published_seq") FROM "outbox"), 0) + 1, false);
