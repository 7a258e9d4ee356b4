import type { PGlite } from "@electric-sql/pglite";
import { overriding } from "./client-proxy.ts";

/**
 * Statements between two garbage collections in embedded mode. Each PGlite statement leaves
 * memory behind until a collection (15 to 17 KB for a `select 1`), and left to itself Bun
 * collected late: 50,000 `select 1` in a row took the process from 396 to 1,144 MB, each statement
 * meanwhile touching fresh memory (3 to 6 page faults a statement, 95 µs of CPU against 26 with a
 * collection every 500). Embedded `serve` under wrk on GET /pets, alternating with the same binary
 * without collections: RSS 427 to 431 MB against 556, at the same rates (docs/operations.md).
 */
export const STATEMENTS_PER_COLLECTION = 1_000;

/** Bun's collection without waiting for it; it also has mimalloc give back what it can. */
const collectSoon = () => Bun.gc(false);

type Collected = Pick<PGlite, "query" | "exec">;

/** `client` with a garbage collection after every `every` statements it runs (query or exec). */
export function collectingGarbage<T extends Collected>(
  client: T,
  every = STATEMENTS_PER_COLLECTION,
  collect: () => void = collectSoon,
): T {
  let statements = 0;
  const counted = () => {
    if (++statements < every) return;
    statements = 0;
    collect();
  };
  const query: Collected["query"] = (...args) => {
    counted();
    return client.query(...args);
  };
  const exec: Collected["exec"] = (...args) => {
    counted();
    return client.exec(...args);
  };
  return overriding(client, { query, exec });
}
