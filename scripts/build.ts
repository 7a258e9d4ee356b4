/**
 * Builds the petbooks executable, the one way it ships: `bun run build`, the Dockerfile, CI and
 * the test suite's binary all come from here.
 *
 *   bun scripts/build.ts [--outfile PATH]
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { createSnapshot } from "../src/db/create-snapshot.ts";
import { SNAPSHOT_FILE_NAME } from "../src/db/embedded-snapshot.ts";
import { runCommand } from "./run-command.ts";

const root = join(import.meta.dir, "..");

/**
 * Whitespace and syntax minification only. Identifier minification renames classes, and Elysia
 * recognises TypeBox's decode errors by `error.constructor.name === "TransformDecodeError"`:
 * renamed, a failed query decode (`limit=0`) is silently ignored and the raw string reaches the
 * handler (a 500 instead of a 422). Bun's `--keep-names` does not keep class names either
 * (checked in scripts/build.test.ts), and the identifiers saved only about 5 of 130 MB.
 */
export const MINIFY_FLAGS = ["--minify-syntax", "--minify-whitespace"];

export async function buildExecutable(outfile: string): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "petbooks-build-"));
  try {
    const snapshot = join(work, SNAPSHOT_FILE_NAME);
    await Bun.write(snapshot, await createSnapshot());
    const { code, stdout, stderr } = await runCommand(
      [
        process.execPath,
        "build",
        "--compile",
        ...MINIFY_FLAGS,
        "--sourcemap",
        // Embedded files keep their name, so the app finds the snapshot in Bun.embeddedFiles.
        "--asset-naming=[name].[ext]",
        join(root, "src/main.ts"),
        snapshot,
        "--outfile",
        resolve(outfile),
      ],
      { cwd: work },
    );
    if (code !== 0) throw new Error(`bun build failed (${code}):\n${stdout}${stderr}`);
    // Bun also writes an empty source map for the embedded snapshot next to the executable.
    rmSync(join(dirname(resolve(outfile)), `${basename(SNAPSHOT_FILE_NAME, ".gz")}.js.map`), {
      force: true,
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const at = process.argv.indexOf("--outfile");
  const outfile = at > 0 ? (process.argv[at + 1] ?? "") : join(root, "petbooks");
  const started = performance.now();
  await buildExecutable(outfile);
  console.log(`built ${outfile} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
