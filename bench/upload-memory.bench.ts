/**
 * Memory of `serve` while photos are uploaded: 64 concurrent uploads of a 10 MiB photo (the
 * default MAX_PHOTO_BYTES), against the local folder and an S3-compatible bucket (s3rver, run
 * in this process, so its memory is not counted). The server's resident memory (VmRSS, sampled
 * every 10 ms, and the kernel's peak VmHWM) is read from /proc before and during the burst; the
 * figure that matters is the growth over the idle baseline, per upload in flight. docs/storage.md
 * quotes it.
 *
 * The photo is a PNG of 10 MiB (an eXIf chunk with GPS, so stripping has work, and one IDAT of
 * random bytes: the server walks chunks, it never decodes pixels). Uploads stream to a temporary
 * file, then through the metadata stripper to storage: an upload should hold a few chunks (local)
 * or about one 5 MiB S3 part, not the whole file.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runBench } from "./lib/cleanup.ts";
import { API_KEY, openWorkspace, progress } from "./lib/context.ts";
import { loadAverage } from "./lib/machine.ts";
import type { Options } from "./lib/options.ts";
import { photoFixtures } from "./lib/petbooks.ts";
import { freePorts, peakRssMb, rssMb, startServer } from "./lib/processes.ts";
import { petbooksEnv } from "./lib/servers.ts";

const OPTIONS = {
  uploads: { int: 64, help: "concurrent uploads" },
  mib: { int: 10, help: "size of each photo in MiB (MAX_PHOTO_BYTES is set to match)" },
  backend: { text: "both", choices: ["local", "s3", "both"], help: "local, s3 or both" },
  binary: {
    help: "measure this executable instead of a build of the current sources (e.g. an older commit's, to compare; it must know S3_BUCKET for --backend s3)",
  },
} as const;

const { pngChunk, gpsExifTiff, startTestS3Server } = await photoFixtures();

/** A PNG of exactly `size` bytes: header, an eXIf with GPS, one IDAT of random bytes, IEND. */
function bigPng(size: number): Uint8Array<ArrayBuffer> {
  const head = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, 2000);
  new DataView(ihdr.buffer).setUint32(4, 1750);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const parts = [head, pngChunk("IHDR", ihdr), pngChunk("eXIf", gpsExifTiff(6))];
  const tail = pngChunk("IEND", new Uint8Array());
  const fixed = parts.reduce((n, p) => n + p.length, 0) + tail.length + 12;
  const data = new Uint8Array(size - fixed);
  for (let at = 0; at < data.length; at += 65_536) {
    crypto.getRandomValues(data.subarray(at, Math.min(at + 65_536, data.length)));
  }
  // pngChunk copies through arrays: fine for small chunks, too slow for 10 MiB; built by hand.
  const idat = new Uint8Array(12 + data.length);
  new DataView(idat.buffer).setUint32(0, data.length);
  idat.set(new TextEncoder().encode("IDAT"), 4);
  idat.set(data, 8);
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of [...parts, idat, tail]) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

interface Result {
  backend: string;
  baselineMb: number;
  peakSampledMb: number;
  peakHwmMb: number;
  seconds: number;
  statuses: Record<number, number>;
  load: string;
}

async function measure(
  binary: string,
  backend: string,
  options: Options<typeof OPTIONS>,
  photo: Blob,
  s3Env: Record<string, string>,
): Promise<Result> {
  const dataDir = mkdtempSync(join(tmpdir(), "petbooks-upload-bench-"));
  const [port] = (await freePorts(1)) as [number];
  const url = `http://127.0.0.1:${port}`;
  const env = { DATA_DIR: dataDir, PORT: String(port), PUBLIC_URL: url, METRICS: "off" };
  const server = await startServer({
    name: "serve",
    cmd: [binary, "serve"],
    port,
    core: null,
    readyTimeoutMs: 120_000,
    logFile: "/dev/null",
    env: petbooksEnv({
      ...env,
      MAX_PHOTO_BYTES: String(options.mib * 1024 * 1024),
      ...(backend === "s3" ? s3Env : {}),
    }),
  });
  try {
    const headers = { "x-api-key": API_KEY };
    const created = await fetch(`${url}/pets`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ name: "Memory", age: 3, type: "cat" }),
    });
    const { id } = (await created.json()) as { id: string };
    const upload = async () => {
      const form = new FormData();
      form.append("file", photo, "photo.png");
      const res = await fetch(`${url}/pets/${id}/photo`, { method: "POST", headers, body: form });
      await res.arrayBuffer();
      return res.status;
    };
    // Warm up: the code paths, the database connection, the allocator's first arenas.
    for (let i = 0; i < 2; i++) await upload();
    Bun.gc(true);
    await Bun.sleep(500);
    const baselineMb = rssMb(server.pid) ?? Number.NaN;
    let peakSampledMb = baselineMb;
    const sampler = setInterval(() => {
      peakSampledMb = Math.max(peakSampledMb, rssMb(server.pid) ?? 0);
    }, 10);
    const started = performance.now();
    const statuses = await Promise.all(Array.from({ length: options.uploads }, upload));
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const counted: Record<number, number> = {};
    for (const status of statuses) counted[status] = (counted[status] ?? 0) + 1;
    return {
      backend,
      baselineMb,
      peakSampledMb,
      peakHwmMb: peakRssMb(server.pid) ?? Number.NaN,
      seconds,
      statuses: counted,
      load: loadAverage(),
    };
  } finally {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await runBench({
  script: "bench/upload-memory.bench.ts",
  options: OPTIONS,
  async run(options, cleanup) {
    const { binary } = await openWorkspace(cleanup, {
      name: "upload-bench-bin",
      binary: options.binary,
    });
    const s3 = await startTestS3Server("upload-bench");
    cleanup.defer(() => s3.close());
    const photo = new Blob([bigPng(options.mib * 1024 * 1024)], { type: "image/png" });
    const results: Result[] = [];
    for (const backend of options.backend === "both" ? ["local", "s3"] : [options.backend]) {
      progress(`${options.uploads} concurrent ${options.mib} MiB uploads, ${backend}`);
      results.push(await measure(binary, backend, options, photo, s3.env));
    }
    console.log(
      `\n${options.uploads} concurrent uploads of ${options.mib} MiB (${options.uploads * options.mib} MiB in all)\n`,
    );
    console.log(
      "| storage | idle RSS | peak RSS (sampled) | peak RSS (VmHWM) | growth | per upload | time | answers | load average |",
    );
    console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (const r of results) {
      const growth = r.peakHwmMb - r.baselineMb;
      console.log(
        `| ${r.backend} | ${r.baselineMb.toFixed(0)} MB | ${r.peakSampledMb.toFixed(0)} MB | ${r.peakHwmMb.toFixed(0)} MB | ${growth.toFixed(0)} MB | ${(growth / options.uploads).toFixed(1)} MB | ${r.seconds.toFixed(1)} s | ${JSON.stringify(r.statuses)} | ${r.load} |`,
      );
    }
    const failed = results.some((r) => Object.keys(r.statuses).some((s) => s !== "201"));
    return failed ? 1 : 0;
  },
});
