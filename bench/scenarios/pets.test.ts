import { describe, expect, test } from "bun:test";
import { cpuRow, embeddedRow, embeddedVerdict, noCeilingReason } from "./pets.ts";

const run = (round: number, result: Record<string, number>) => ({ round, load: "0 0 0", result });

describe("the GET /pets CPU table", () => {
  test("sums each subject's processes, the cores it kept busy, and the ratios from CPU", () => {
    const runs = {
      petbooks: [
        run(1, { rps: 5000, cpuUs: 100, databaseCpuUs: 140, loadCpuUs: 20 }),
        run(2, { rps: 6000, cpuUs: 110, databaseCpuUs: 150, loadCpuUs: 20 }),
        run(3, { rps: 7000, cpuUs: 90, databaseCpuUs: 130, loadCpuUs: 20 }),
      ],
      ceiling: [
        run(1, { rps: 6000, cpuUs: 80, databaseCpuUs: 140, loadCpuUs: 20 }),
        run(2, { rps: 6000, cpuUs: 80, databaseCpuUs: 140, loadCpuUs: 20 }),
        run(3, { rps: 6000, cpuUs: 80, databaseCpuUs: 140, loadCpuUs: 20 }),
      ],
      "PostgreSQL alone": [
        run(1, { rps: 10000, databaseCpuUs: 150, loadCpuUs: 20 }),
        run(2, { rps: 10000, databaseCpuUs: 150, loadCpuUs: 20 }),
        run(3, { rps: 10000, databaseCpuUs: 150, loadCpuUs: 20 }),
      ],
      embedded: [
        run(1, { rps: 2000, cpuUs: 500, loadCpuUs: 30 }),
        run(2, { rps: 2000, cpuUs: 500, loadCpuUs: 30 }),
        run(3, { rps: 2000, cpuUs: 500, loadCpuUs: 30 }),
      ],
      "embedded ceiling": [run(1, { rps: 2500, cpuUs: 400, loadCpuUs: 30 })],
    };
    const filter = { name: "no filter", query: "", hasPhotos: undefined, offset: 0 } as const;
    expect(cpuRow(filter, runs)).toEqual([
      "no filter",
      // medians 100 + 140 + 20; cores: 5000 x 260, 6000 x 280, 7000 x 240 µs: median 1.68
      "260 = 100 + 140 + 20; 1.7 cores",
      "240 = 80 + 140 + 20; 1.4 cores",
      "170 = 150 + 20; 1.7 cores",
      "530 = 500 + 30; 1.1 cores",
      (170 / 260).toFixed(2),
      // without the servers: petbooks 140 + 20, the ceiling 140 + 20
      (170 / 160).toFixed(2),
    ]);
  });

  test("adds how busy each core was, medians of the runs, where it was measured", () => {
    const busy = (rps: number, coreBusy: number[]) => ({
      rps,
      cpuUs: 50,
      databaseCpuUs: 50,
      loadCpuUs: 20,
      coreBusy,
    });
    const runs = {
      petbooks: [
        { round: 1, load: "0 0 0", result: busy(10000, [0.98, 0.6]) },
        { round: 2, load: "0 0 0", result: busy(10000, [0.96, 0.7]) },
        { round: 3, load: "0 0 0", result: busy(10000, [0.9, 0.8]) },
      ],
      ceiling: [run(1, { rps: 10000, cpuUs: 50, databaseCpuUs: 50, loadCpuUs: 20 })],
      "PostgreSQL alone": [run(1, { rps: 20000, databaseCpuUs: 60, loadCpuUs: 20 })],
    };
    const filter = { name: "no filter", query: "", hasPhotos: undefined, offset: 0 } as const;
    const row = cpuRow(filter, runs as never);
    expect(row[1]).toBe("120 = 50 + 50 + 20; 1.2 cores, core 0 0.96 / core 1 0.70 busy");
    // Not measured (an older run): the figure is left out, not shown as 0.
    expect(row[2]).toBe("120 = 50 + 50 + 20; 1.2 cores");
  });

  test("a subject not measured, or PostgreSQL's CPU unknown, shows as -", () => {
    const runs = {
      petbooks: [run(1, { rps: 5000, cpuUs: 100, loadCpuUs: 20 })],
      ceiling: [run(1, { rps: 5000, cpuUs: 100, loadCpuUs: 20 })],
      "PostgreSQL alone": [run(1, { rps: 9000, loadCpuUs: 20 })],
    };
    const filter = { name: "no filter", query: "", hasPhotos: undefined, offset: 0 } as const;
    expect(cpuRow(filter, runs as never)).toEqual(["no filter", "-", "-", "-", "-", "-", "-"]);
  });

  test("the bound for a server costing nothing takes the cheaper of petbooks and the ceiling", () => {
    const one = (result: Record<string, number>) => [run(1, result)];
    const runs = {
      petbooks: one({ rps: 5000, cpuUs: 100, databaseCpuUs: 150, loadCpuUs: 20 }),
      ceiling: one({ rps: 6000, cpuUs: 80, databaseCpuUs: 120, loadCpuUs: 20 }),
      "PostgreSQL alone": one({ rps: 10000, databaseCpuUs: 110, loadCpuUs: 10 }),
    };
    const filter = {
      name: "has_photos=true",
      query: "?has_photos=true",
      hasPhotos: true,
      offset: 0,
    } as const;
    const row = cpuRow(filter, runs as never);
    expect(row[5]).toBe((120 / 270).toFixed(2));
    expect(row[6]).toBe((120 / 140).toFixed(2));
  });
});

describe("the embedded figures", () => {
  const filter = { name: "no filter", query: "", hasPhotos: undefined, offset: 0 } as const;

  test("pair each round's embedded petbooks with petbooks on PostgreSQL and with its ceiling", () => {
    const runs = {
      petbooks: [run(1, { rps: 10000 }), run(2, { rps: 8000 }), run(3, { rps: 12000 })],
      embedded: [
        run(1, { rps: 3000, cpuUs: 320 }),
        run(2, { rps: 3200, cpuUs: 300 }),
        run(3, { rps: 3600, cpuUs: 280 }),
      ],
      "embedded ceiling": [
        run(1, { rps: 3300, cpuUs: 290 }),
        run(2, { rps: 3200, cpuUs: 300 }),
        run(3, { rps: 4500, cpuUs: 250 }),
      ],
    };
    const figures = embeddedRow(filter, runs as never);
    // Round by round: 0.30, 0.40, 0.30 of PostgreSQL; the ceiling 0.33, 0.40, 0.375.
    expect(figures?.vsPostgres).toMatchObject({ median: 0.3, min: 0.3, max: 0.4 });
    expect(figures?.bound).toMatchObject({ median: 0.375, min: 0.33, max: 0.4 });
    expect(figures?.vsCeiling.median).toBeCloseTo(0.909, 3);
    expect(figures?.row).toEqual([
      "no filter",
      "3,200",
      "3,300",
      "0.30 (0.30-0.40)",
      "0.38 (0.33-0.40)",
      "0.91 (0.80-1.00)",
      "300 / 290",
    ]);
  });

  test("show the digit their verdict turns on where two would read as the target", () => {
    const runs = {
      petbooks: [run(1, { rps: 10000 })],
      embedded: [run(1, { rps: 3588, cpuUs: 300 })],
      "embedded ceiling": [run(1, { rps: 4000, cpuUs: 290 })],
    };
    const figures = embeddedRow(filter, runs as never);
    // 0.3588 of PostgreSQL, the ceiling 0.40, embedded 0.897 of the ceiling: a miss of 0.9.
    expect(figures?.vsCeiling.median).toBeLessThan(0.9);
    expect(figures?.text).toEqual({
      vsPostgres: "0.36 (0.36-0.36)",
      bound: "0.40 (0.40-0.40)",
      vsCeiling: "0.897 (0.90-0.90)",
    });
    expect(figures?.row.slice(3, 6)).toEqual(Object.values(figures?.text ?? {}));
  });

  test("are none when embedded petbooks or its ceiling did not run", () => {
    const petbooks = [run(1, { rps: 10000 })];
    const embedded = [run(1, { rps: 3000, cpuUs: 320 })];
    expect(embeddedRow(filter, { petbooks, embedded } as never)).toBeUndefined();
    expect(
      embeddedRow(filter, { petbooks, "embedded ceiling": embedded } as never),
    ).toBeUndefined();
  });

  describe("judged against the target of 0.4", () => {
    const figures = (vsPostgres: number, bound: number, vsCeiling: number) => ({
      vsPostgres: { median: vsPostgres },
      bound: { median: bound },
      vsCeiling: { median: vsCeiling },
    });

    test("are met at 0.4 of petbooks on PostgreSQL, whatever the ceiling did", () => {
      expect(embeddedVerdict(figures(0.4, 0.3, 0.5))).toBe(true);
    });

    test("are out of reach, explained, only when the bare server on PGlite misses too", () => {
      expect(embeddedVerdict(figures(0.31, 0.34, 0.91))).toBe("explained");
      // The bare server reached it: petbooks' own cost is what misses.
      expect(embeddedVerdict(figures(0.39, 0.41, 0.95))).toBe(false);
    });

    test("are missed when petbooks falls under 0.9 of the bare server on PGlite", () => {
      expect(embeddedVerdict(figures(0.25, 0.34, 0.74))).toBe(false);
    });
  });
});

describe("a ceiling that is no ceiling", () => {
  const cpu = (...values: number[]) =>
    values.map((databaseCpuUs, i) => run(i + 1, { rps: 200, databaseCpuUs }));

  test("is judged round by round: a machine slowing down mid-run does not make one", () => {
    // offset=50000 in a report of 2026-12-02: rounds 4 and 5 ran every statement at 13 ms.
    const runs = {
      petbooks: cpu(8289, 8293, 8174, 13116, 13080),
      ceiling: cpu(11123, 8356, 8096, 12576, 12584),
    };
    expect(noCeilingReason(runs)).toBe("");
  });

  test("is one when PostgreSQL spends more under it in most rounds", () => {
    const runs = { petbooks: cpu(138, 199, 170), ceiling: cpu(349, 347, 419) };
    expect(noCeilingReason(runs)).toBe(
      "; no ceiling: PostgreSQL spent 2.5x petbooks' CPU per request under it",
    );
  });
});
