import { describe, expect, test } from "bun:test";
import { Writable } from "node:stream";
import { ExportStalledError, writePetsExport } from "./pets.export.ts";
import type { PetsService } from "./pets.service.ts";

/** A service whose export yields `batches` one-pet batches, and says when it was closed. */
function exportingService(batches: number) {
  const state = { closed: false };
  const service = {
    async *exportJson() {
      try {
        for (let i = 0; i < batches; i++) yield { json: `{"id":${i}}`, count: 1 };
      } finally {
        state.closed = true;
      }
    },
  } as unknown as PetsService;
  return { service, state };
}

const collecting = (chunks: string[], failAt = Number.POSITIVE_INFINITY) =>
  new Writable({
    write(chunk, _encoding, done) {
      if (chunks.length >= failAt) return done(new Error("EPIPE: the reader went away"));
      chunks.push(String(chunk));
      done();
    },
  });

describe("writePetsExport", () => {
  test("writes one JSON document of every batch", async () => {
    const { service, state } = exportingService(3);
    const chunks: string[] = [];
    expect(await writePetsExport(service, collecting(chunks), { hasPhotos: undefined })).toBe(3);
    expect(JSON.parse(chunks.join(""))).toEqual({ pets: [{ id: 0 }, { id: 1 }, { id: 2 }] });
    expect(state.closed).toBe(true);
  });

  test("no pets: an empty document", async () => {
    const { service } = exportingService(0);
    const chunks: string[] = [];
    expect(await writePetsExport(service, collecting(chunks), { hasPhotos: undefined })).toBe(0);
    expect(chunks.join("")).toBe('{"pets":[]}\n');
  });

  test("a write that fails ends the batches too, so their cursor is closed", async () => {
    const { service, state } = exportingService(5);
    const chunks: string[] = [];
    const out = collecting(chunks, 2);
    out.on("error", () => {});
    await expect(writePetsExport(service, out, { hasPhotos: undefined })).rejects.toThrow("EPIPE");
    expect(state.closed).toBe(true);
  });
});

describe("writePetsExport's stall limit", () => {
  /** A service whose export yields `before` batches, then waits forever, as a silent network. */
  function stallingService(before: number) {
    const service = {
      async *exportJson() {
        for (let i = 0; i < before; i++) yield { json: `{"id":${i}}`, count: 1 };
        await new Promise(() => {});
      },
    } as unknown as PetsService;
    return service;
  }

  test.each([0, 2])("gives up after %i batches when the next never comes", async (before) => {
    const chunks: string[] = [];
    const err = await writePetsExport(stallingService(before), collecting(chunks), {
      hasPhotos: undefined,
      stallMs: 20,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExportStalledError);
    expect((err as Error).message).toBe(
      "export abandoned: the database sent no pets for 0.02 s (EXPORT_STALL_TIMEOUT_MS)",
    );
    // An export that fails before its first batch writes nothing.
    expect(chunks.join("")).toBe(
      before === 0
        ? ""
        : `{"pets":[${Array.from({ length: before }, (_, i) => `{"id":${i}}`).join(",")}`,
    );
  });

  test("a limit changes nothing for an export whose batches come", async () => {
    const { service, state } = exportingService(3);
    const chunks: string[] = [];
    const options = { hasPhotos: undefined, stallMs: 60_000 };
    expect(await writePetsExport(service, collecting(chunks), options)).toBe(3);
    expect(state.closed).toBe(true);
  });
});
