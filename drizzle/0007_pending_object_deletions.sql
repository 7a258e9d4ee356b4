CREATE TABLE "pending_object_deletions" (
	"file_name" text PRIMARY KEY NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	"last_error" text,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "pending_object_deletions_next_attempt_idx" ON "pending_object_deletions" USING btree ("next_attempt_at");