/**
 * A query's rows as PostgreSQL's `COPY (...) TO STDOUT` writes them, one text value per row, read
 * through postgres.js in batches of whole rows joined by commas: the export's JSON objects go
 * from the socket to the output as bytes, with no row objects or strings made in between, and
 * PostgreSQL streams them without waiting for a fetch per batch.
 */
import type { Readable } from "node:stream";
import { withinTimeout } from "../timeout.ts";
import type { Db } from "./client.ts";

interface CopyQuery extends Promise<unknown> {
  readable(): Promise<Readable>;
  /** postgres.js internals, see cancelCopy. */
  active?: boolean;
  canceller?: ((query: CopyQuery) => Promise<void>) | null;
}

interface CopyTransaction {
  unsafe(text: string): CopyQuery;
}

/** The part of a postgres.js client this needs. */
export interface CopyClient {
  begin<T>(work: (tx: CopyTransaction) => Promise<T>): Promise<T>;
}

/** The handle's postgres.js client, or undefined for another driver (PGlite) or a transaction. */
export function copyClient(db: Db): CopyClient | undefined {
  const client = (db as { $client?: { begin?: unknown; unsafe?: unknown } }).$client;
  return typeof client?.begin === "function" && typeof client.unsafe === "function"
    ? (client as unknown as CopyClient)
    : undefined;
}

export interface CopyBatch {
  /** The rows' values joined by commas (UTF-8). */
  bytes: Uint8Array;
  rows: number;
}

const NEWLINE = 0x0a;
const COMMA = 0x2c;
/**
 * The longest a stopped COPY's connection waits for its cancel to be taken (see cancelCopy). A
 * server closes the cancel's connection at once; this only bounds a network that swallows it.
 */
const CANCEL_WAIT_MS = 10_000;

/**
 * COPY's CSV format with a quote and a delimiter that JSON text never holds unescaped (control
 * characters), so that a value goes out as it is: nothing quoted, no backslash doubled.
 */
const RAW_LINES = "with (format csv, quote e'\\x01', delimiter e'\\x02')";

/**
 * The single text column of `query`'s rows (never null, no control characters: JSON text), in
 * batches of at least `batchRows` rows (the last may have fewer), inside one transaction that
 * runs `setup` first. PostgreSQL is held back by the socket when the consumer is slower, so
 * memory stays at a batch or two. Stopping early (return or throw in the loop) cancels the COPY
 * and ends the transaction before the generator returns.
 */
export async function* copyOut(
  client: CopyClient,
  setup: string[],
  query: string,
  batchRows: number,
): AsyncGenerator<CopyBatch> {
  let copy: CopyQuery | undefined;
  /** The cancel of a COPY stopped early, until PostgreSQL has taken it (see below). */
  let cancelled: Promise<void> | undefined;
  let opened: (rows: Readable) => void = () => {};
  const rowsOpened = new Promise<Readable>((resolve) => (opened = resolve));
  const transaction = client.begin(async (tx) => {
    for (const statement of setup) await tx.unsafe(statement);
    copy = tx.unsafe(`copy (${query}) to stdout ${RAW_LINES}`);
    // Its failure (the connection lost mid-COPY) reaches us through the stream and the
    // transaction; the query's own promise would be an unhandled rejection.
    copy.catch(() => {});
    const rows = await copy.readable();
    opened(rows);
    // Nothing else can go over the connection (not even COMMIT) until the COPY is over, which
    // closes the stream (an error in the first read may have closed it already).
    if (!rows.closed) await new Promise((resolve) => rows.once("close", resolve));
    // A cancel reaches the backend by another connection, whenever it arrives: still on its way
    // once the COPY is over (it may have been over before the cancel went out), it would cancel
    // whatever this connection ran next, the COMMIT or another caller's statement. Taken while
    // the backend waits for our next command, it is dropped.
    await cancelled;
  });
  const ended = transaction.then(
    () => undefined,
    (err: unknown) => err ?? new Error("the COPY failed"),
  );
  const first = await Promise.race([
    rowsOpened.then((rows) => ({ rows })),
    ended.then((err) => ({ err: err ?? new Error("the COPY ended before it began") })),
  ]);
  if (!("rows" in first)) throw first.err;
  const { rows } = first;
  let finished = false;
  try {
    let parts: Uint8Array[] = [];
    let size = 0;
    let lines = 0;
    // Not destroyed when the consumer stops early: postgres.js would then wait forever to push
    // into it, with the socket paused (see finally).
    const chunks = rows.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>;
    for await (const chunk of chunks) {
      parts.push(chunk);
      size += chunk.length;
      lines += countNewlines(chunk);
      if (lines >= batchRows && chunk[chunk.length - 1] === NEWLINE) {
        yield joinedLines(parts, size, lines);
        parts = [];
        size = 0;
        lines = 0;
      }
    }
    if (size > 0) yield joinedLines(parts, size, lines);
    finished = true;
  } finally {
    if (!finished && !rows.destroyed && copy) {
      cancelled = cancelCopy(copy);
      // What PostgreSQL sent before the cancel is read and dropped, then its error. Not destroyed:
      // the stream's close must mean that the COPY is over (the transaction waits for it).
      rows.resume();
    }
    // Stopped early or failed: the transaction's own end (a rollback, the cancel) is no news.
    if (!finished) await ended;
  }
  const err = await ended;
  if (err !== undefined) throw err;
}

/**
 * Asks PostgreSQL to stop a COPY that is still sending. postgres.js counts a query as done once
 * it has answered, and a COPY answers with its stream at once, so its own `cancel()` would only
 * note the wish; marked active again, the query is cancelled on the server as any running one.
 * Settles once PostgreSQL has taken the cancel (it closes the cancel's connection after
 * signalling the backend). A cancel that fails (the server is gone) changes nothing: the rows are
 * read to their end.
 */
async function cancelCopy(copy: CopyQuery): Promise<void> {
  copy.active = true;
  const cancelling = copy.canceller?.(copy);
  copy.canceller = null;
  if (cancelling)
    await withinTimeout(cancelling, CANCEL_WAIT_MS, (m) => new Error(m)).catch(() => {});
}

function countNewlines(chunk: Uint8Array): number {
  let count = 0;
  for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) count++;
  return count;
}

/** Whole lines, each ending in a newline, as one value: newlines made commas, the last dropped. */
function joinedLines(parts: Uint8Array[], size: number, rows: number): CopyBatch {
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  for (let at = bytes.indexOf(NEWLINE); at !== -1; at = bytes.indexOf(NEWLINE, at + 1)) {
    bytes[at] = COMMA;
  }
  return { bytes: bytes.subarray(0, size - 1), rows };
}
