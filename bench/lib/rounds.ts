/**
 * Interleaved rounds: each subject runs once per round, in reverse order every other round
 * (A B, B A, A B ...), so that neither gains from a trend in the machine's load. Every run
 * records the load average at its start.
 */
import { loadAverage } from "./machine.ts";
import { median, pairedRatio, type Ratio } from "./stats.ts";

export interface Timed<R> {
  round: number;
  load: string;
  result: R;
}

export type Runs<S extends string, R> = Record<S, Timed<R>[]>;

export async function interleaved<S extends string, R>(
  subjects: readonly S[],
  rounds: number,
  run: (subject: S, round: number) => Promise<R>,
  /** Before each round: false stops (the rounds so far are kept). */
  beforeRound?: (round: number) => boolean,
): Promise<Runs<S, R>> {
  const runs = Object.fromEntries(subjects.map((s) => [s, [] as Timed<R>[]])) as Runs<S, R>;
  for (let round = 1; round <= rounds; round++) {
    if (beforeRound && !beforeRound(round)) break;
    const order = round % 2 === 1 ? subjects : [...subjects].reverse();
    for (const subject of order) {
      const load = loadAverage();
      runs[subject].push({ round, load, result: await run(subject, round) });
    }
  }
  return runs;
}

/** One figure of every run of `subject`, in round order. */
export const figures = <R>(runs: Timed<R>[] | undefined, pick: (r: R) => number | undefined) =>
  (runs ?? []).map((r) => pick(r.result) ?? Number.NaN);

export const medianOf = <R>(runs: Timed<R>[] | undefined, pick: (r: R) => number | undefined) =>
  median(figures(runs, pick));

/** Per-round ratio of a figure of `a`'s runs to `b`'s: the median and the min-max. */
export const ratioOf = <R>(
  a: Timed<R>[] | undefined,
  b: Timed<R>[] | undefined,
  pick: (r: R) => number | undefined,
): Ratio => pairedRatio(figures(a, pick), figures(b, pick));

/** Whether any run had a failed request (which voids its figures). */
export const anyFailed = (...lists: (Timed<{ failures?: number }>[] | undefined)[]) =>
  lists.some((list) => (list ?? []).some((r) => (r.result.failures ?? 0) > 0));
