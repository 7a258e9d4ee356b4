/** Serves stored photos at their unguessable URLs, without the API key, cached for a year. */
import { Elysia } from "elysia";
import { NotFoundError } from "../errors.ts";
import type { PhotoStorage } from "./photo-storage.ts";

export function photoRoutes(storage: PhotoStorage) {
  return new Elysia({ name: "photos" }).get(
    "/photos/:fileName",
    async ({ params }) => {
      const photo = await storage.open(params.fileName);
      if (!photo) throw new NotFoundError("No such photo.");
      return new Response(photo.body, {
        headers: {
          "content-type": photo.contentType,
          // A file name is never reused for other bytes.
          "cache-control": "public, max-age=31536000, immutable",
          "x-content-type-options": "nosniff",
        },
      });
    },
    { detail: { hide: true } },
  );
}
