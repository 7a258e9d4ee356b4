CREATE TYPE "public"."pet_type" AS ENUM('dog', 'cat');--> statement-breakpoint
CREATE TABLE "pet_photos" (
	"id" uuid PRIMARY KEY NOT NULL,
	"pet_id" uuid NOT NULL,
	"file_name" text NOT NULL,
	"content_type" text NOT NULL,
	"size_bytes" integer NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "pet_photos_file_name_unique" UNIQUE("file_name")
);
--> statement-breakpoint
CREATE TABLE "pet_stats" (
	"id" smallint PRIMARY KEY NOT NULL,
	"total" bigint NOT NULL,
	"with_photos" bigint NOT NULL,
	CONSTRAINT "pet_stats_singleton" CHECK ("pet_stats"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE "pets" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" varchar(100) NOT NULL,
	"age" smallint NOT NULL,
	"type" "pet_type" NOT NULL,
	"photo_count" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "pets_age_range" CHECK ("pets"."age" between 0 and 50),
	CONSTRAINT "pets_photo_count_not_negative" CHECK ("pets"."photo_count" >= 0)
);
--> statement-breakpoint
ALTER TABLE "pet_photos" ADD CONSTRAINT "pet_photos_pet_id_pets_id_fk" FOREIGN KEY ("pet_id") REFERENCES "public"."pets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "pet_photos_pet_id_idx" ON "pet_photos" USING btree ("pet_id","created_at","id");--> statement-breakpoint
CREATE INDEX "pets_newest_first_idx" ON "pets" USING btree ("created_at" DESC NULLS LAST,"id" DESC NULLS LAST);