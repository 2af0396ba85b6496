/**
 * Settings for fast-check property tests: a seed that is printed (and can be replayed with
 * FC_SEED=<seed>), and a number of runs (FC_RUNS=<n> for a longer local search). On
 * failure fast-check's report repeats the seed and the path of the shrunk counterexample.
 */
import type fc from 'fast-check';

/** fast-check parameters for one property: seeded from FC_SEED, or at random and printed. */
export function propertyParameters<T>(name: string, numRuns: number): fc.Parameters<T> {
  const fromEnv = process.env.FC_SEED;
  const seed =
    fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : Math.floor(Math.random() * 0x7fffffff);
  const runs = process.env.FC_RUNS ? Number(process.env.FC_RUNS) : numRuns;
  console.log(`# ${name}: fast-check seed ${seed}, ${runs} runs (replay with FC_SEED=${seed})`);
  return { seed, numRuns: runs };
}
