DROP INDEX "pet_photos_pet_id_idx";--> statement-breakpoint
CREATE INDEX "pet_photos_pet_id_idx" ON "pet_photos" USING btree ("pet_id","created_at","id","file_name");