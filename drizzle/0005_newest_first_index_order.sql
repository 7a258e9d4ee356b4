DROP INDEX "books_newest_first_idx";--> statement-breakpoint
DROP INDEX "books_author_newest_first_idx";--> statement-breakpoint
DROP INDEX "pets_newest_first_idx";--> statement-breakpoint
CREATE INDEX "books_newest_first_idx" ON "books" USING btree ("created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "books_author_newest_first_idx" ON "books" USING btree ("author","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "pets_newest_first_idx" ON "pets" USING btree ("created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);