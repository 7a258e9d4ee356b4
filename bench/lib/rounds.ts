/**
 * Interleaved rounds: each subject runs once per round, in reverse order every other round
 * (A B, B A, A B ...), so that neither gains from a trend in the machine's load. Every run
 * records the load average at its start.
 */
import { loadAverage } from "./machine.ts";

export interface Timed<R> {
  round: number;
  load: string;
  result: R;
}

export async function interleaved<S extends string, R>(
  subjects: readonly S[],
  rounds: number,
  run: (subject: S, round: number) => Promise<R>,
): Promise<Record<S, Timed<R>[]>> {
  const runs = Object.fromEntries(subjects.map((s) => [s, [] as Timed<R>[]])) as Record<
    S,
    Timed<R>[]
  >;
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? subjects : [...subjects].reverse();
    for (const subject of order) {
      const load = loadAverage();
      runs[subject].push({ round, load, result: await run(subject, round) });
    }
  }
  return runs;
}
