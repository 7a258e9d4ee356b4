/** Liveness and readiness probes; no API key, so orchestrators can call them. */
import { Elysia, t } from "elysia";
import type { Database } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { problemResponses } from "./problem.ts";

const Status = t.Object({ status: t.UnionEnum(["ok"]) }, { description: "Healthy." });

export function healthRoutes(database: Database) {
  return new Elysia({ name: "health" })
    .get("/healthz", () => ({ status: "ok" as const }), {
      response: { 200: Status },
      detail: { tags: ["health"], summary: "The process is up" },
    })
    .get(
      "/readyz",
      async () => {
        try {
          await database.ping();
        } catch {
          throw new AppError("unavailable", "The database is not reachable.");
        }
        return { status: "ok" as const };
      },
      {
        response: { 200: Status, ...problemResponses(503) },
        detail: { tags: ["health"], summary: "The database answers" },
      },
    );
}
