/** What every scenario of the report gets: options, a private workspace, the report, cleanup. */
import type { Cleanup } from "./cleanup.ts";
import { loadAverage } from "./machine.ts";
import type { Report } from "./report.ts";

export interface BenchOptions {
  /** Interleaved rounds per comparison. */
  rounds: number;
  /** Seconds of each measured load run, after `warmup` seconds of the same load. */
  seconds: number;
  warmup: number;
  /** DATABASE_POOL_SIZE of petbooks and of every ceiling; pgbench's clients. */
  pool: number;
  /** Leave out the export over 1,000,000 pets (the slowest part). */
  skip1m: boolean;
}

export interface Context {
  options: BenchOptions;
  /** A private directory (DATA_DIR, scripts, logs), removed at the end. */
  dir: string;
  /** The petbooks binary under test, built from the current sources into `dir`. */
  binary: string;
  /** The bench's PostgreSQL database (pets and books). */
  databaseUrl: string;
  report: Report;
  cleanup: Cleanup;
}

export const API_KEY = "petbooks-bench-api-key";
/** Signs the bench user's tokens and, in `grpc`, the page tokens (ceilings use it the same way). */
export const JWT_SECRET = "petbooks-bench-jwt-secret-0123456789abcdef";

export const progress = (message: string) => console.error(`· ${message} (load ${loadAverage()})`);
