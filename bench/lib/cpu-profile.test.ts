import { describe, expect, test } from "bun:test";
import { type CpuProfile, flameGraphSvg, partOf, summarize, timedTree } from "./cpu-profile.ts";

const frame = (functionName: string, url = "") => ({ functionName, url, lineNumber: 0 });

/**
 * root ─┬─ handler (petbooks) ── stringify (native)
 *       ├─ compose (Elysia)
 *       └─ (idle)
 * Samples: handler 2 × 100 µs, stringify 3 × 100 µs, compose 1 × 100 µs, idle 4 × 100 µs.
 */
const PROFILE: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame("(root)"), children: [2, 4, 5] },
    { id: 2, callFrame: frame("handler", "file:///app/src/pets/pets.http.ts"), children: [3] },
    { id: 3, callFrame: frame("stringify") },
    { id: 4, callFrame: frame("compose", "file:///app/node_modules/elysia/dist/compose.mjs") },
    { id: 5, callFrame: frame("(idle)") },
  ],
  samples: [2, 2, 3, 3, 3, 4, 5, 5, 5, 5],
  timeDeltas: Array(10).fill(100),
};

describe("cpu profile", () => {
  test("parts come from the file: a package's own path before petbooks' src/", () => {
    expect(partOf(frame("x", "file:///app/node_modules/postgres/src/connection.js"))).toBe(
      "postgres.js (driver)",
    );
    expect(partOf(frame("x", "file:///app/src/db/client.ts"))).toBe("petbooks");
    expect(partOf(frame("q", "file:///app/node_modules/@electric-sql/pglite/dist/x.js"))).toBe(
      "PGlite (embedded PostgreSQL)",
    );
    expect(partOf(frame("(garbage collector)"))).toBe("garbage collection");
  });

  test("idle is left out, and native time is charged to the part that called it", () => {
    const summary = summarize(timedTree(PROFILE));
    expect(summary.busyUs).toBe(600);
    expect(summary.parts).toEqual([
      { part: "petbooks", share: 5 / 6 },
      { part: "Elysia", share: 1 / 6 },
    ]);
    expect(summary.functions[0]).toEqual({ label: "stringify", part: "petbooks", share: 0.5 });
  });

  test("the flame graph has a title and one box per frame, sized by its busy share", () => {
    const svg = flameGraphSvg(timedTree(PROFILE), "GET /pets <test>");
    expect(svg).toContain("<title>Flame graph: GET /pets &lt;test&gt;</title>");
    // The root, handler, stringify and compose: the idle frame has no busy time.
    expect(svg.match(/<rect x=/g)).toHaveLength(4);
    expect(svg).toContain('width="1000.0"'); // handler: 5/6 of 1200
    expect(svg).not.toContain("(idle)");
  });
});
