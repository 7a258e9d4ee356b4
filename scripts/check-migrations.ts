/**
 * Fails when src/db/schema.ts has changes that drizzle/ has no migration for: drizzle-kit
 * generates into a scratch copy of drizzle/, and any new or changed file there is a finding.
 */
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dir, "..");
const committed = join(root, "drizzle");
// drizzle-kit only takes an --out relative to the working directory.
const scratchRelative = "node_modules/.cache/petbooks-drizzle-check";
const scratch = join(root, scratchRelative);
// drizzle-kit compiles the schema through tsx, which keeps its cache in the temp folder
// (tsx-<uid>) and never removes it: pointed here, it goes with the scratch copy.
const scratchTemp = join(root, "node_modules/.cache/petbooks-drizzle-check-tmp");

function files(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.set(relative(dir, path), readFileSync(path, "utf8"));
    }
  };
  walk(dir);
  return out;
}

try {
  rmSync(scratch, { recursive: true, force: true });
  cpSync(committed, scratch, { recursive: true });
  mkdirSync(scratchTemp, { recursive: true });
  const proc = Bun.spawnSync(
    [
      "bunx",
      "drizzle-kit",
      "generate",
      "--dialect=postgresql",
      "--schema=./src/db/schema.ts",
      `--out=./${scratchRelative}`,
    ],
    { cwd: root, stdout: "pipe", stderr: "pipe", env: { ...process.env, TMPDIR: scratchTemp } },
  );
  const output = `${proc.stdout}${proc.stderr}`;
  // drizzle-kit can print an error and still exit 0: require one of its two success messages.
  if (proc.exitCode !== 0 || !/No schema changes|Your SQL migration file/.test(output)) {
    console.error(output);
    throw new Error("drizzle-kit generate failed");
  }
  const before = files(committed);
  const after = files(scratch);
  const changed = [...after.keys()].filter((name) => before.get(name) !== after.get(name));
  if (changed.length > 0) {
    console.error(
      `drizzle/ does not match src/db/schema.ts; run \`bun run db:generate\` and commit:\n  ${changed.join("\n  ")}`,
    );
    process.exit(1);
  }
  console.log("drizzle/ matches the schema");
} finally {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(scratchTemp, { recursive: true, force: true });
}
