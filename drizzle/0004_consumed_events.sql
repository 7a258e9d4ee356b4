CREATE TABLE "consumed_events" (
	"event_id" uuid PRIMARY KEY NOT NULL,
	"consumed_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "consumed_events_consumed_at_idx" ON "consumed_events" USING btree ("consumed_at");