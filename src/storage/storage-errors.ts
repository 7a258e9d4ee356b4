/**
 * Why photo storage could not take a file: the disk (or the quota) is full, or it cannot be
 * written at all (read-only, no permission). The HTTP layer answers 507 and 503 (request-context.ts).
 */

/** What the answer to a full disk says. */
export const STORAGE_FULL = "There is no room left to store the photo; try again later.";
/** What the answer to a disk that cannot be written says. */
export const STORAGE_UNWRITABLE = "Photos cannot be stored right now; try again later.";

/** What a reader is told when stored photos cannot be read: come back in a few seconds. */
export const PHOTOS_UNREADABLE = "Photos cannot be read right now; try again shortly.";
export const READ_RETRY_AFTER_SECONDS = 5;

/** ENOSPC or EDQUOT: nothing more fits until room is made. */
export class StorageFullError extends Error {
  override name = "StorageFullError";
}

/** EROFS, EACCES or EPERM: the storage refuses writes until an operator fixes it. */
export class StorageUnwritableError extends Error {
  override name = "StorageUnwritableError";
  /**
   * The write was given up on while a request of it was still out (a bucket that did not answer
   * in time): its object may yet appear, and should be removed if it does.
   */
  readonly mayHaveLanded: boolean;
  constructor(message: string, options?: { cause?: unknown; mayHaveLanded?: boolean }) {
    super(message, options);
    this.mayHaveLanded = options?.mayHaveLanded ?? false;
  }
}

const FULL = new Set(["ENOSPC", "EDQUOT"]);
const UNWRITABLE = new Set(["EROFS", "EACCES", "EPERM"]);

/** The typed error for a failed write, keeping the original as `cause`; other errors as they are. */
export function storageWriteError(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return err;
  const message = `${code}: ${(err as Error).message}`;
  if (FULL.has(code)) return new StorageFullError(message, { cause: err });
  if (UNWRITABLE.has(code)) return new StorageUnwritableError(message, { cause: err });
  return err;
}

/** An error in one line for logs and the removal table: its code (or name) and message, no stack. */
export const errorSummary = (err: unknown) =>
  err instanceof Error
    ? `${(err as { code?: unknown }).code ?? err.name}: ${err.message}`
    : String(err);
