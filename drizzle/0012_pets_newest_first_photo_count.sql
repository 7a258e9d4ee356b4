DROP INDEX "pets_newest_first_idx";--> statement-breakpoint
CREATE INDEX "pets_newest_first_idx" ON "pets" USING btree ("created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST,"photo_count");