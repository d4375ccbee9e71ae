// The CI seed sweep, shared by the two sweep test files (vitest runs files in parallel, one
// per core). WEIR_SIM_SEEDS sets the total number of seeds (default 2,000).

import { SimulationFailure, runSimulation, sweepOptions } from '../src/sim/index.js';

export const SWEEP_SEEDS = seedCount(process.env.WEIR_SIM_SEEDS);
/** The budget of the default sweep is 3 minutes on a 2-core machine; more seeds, more time. */
export const SWEEP_TIMEOUT_MS = Math.max(180_000, SWEEP_SEEDS * 100);
const REPORTED_FAILURES = 10;

/** Runs seeds first..last (sweepOptions mix) and returns the failure reports, if any. */
export function sweep(first: number, last: number): string[] {
  const failures: string[] = [];
  for (let seed = first; seed <= last; seed++) {
    try {
      runSimulation(sweepOptions(seed));
    } catch (error) {
      if (!(error instanceof SimulationFailure)) throw error;
      if (failures.length < REPORTED_FAILURES) failures.push(error.message);
      else if (failures.length === REPORTED_FAILURES) failures.push('… and more');
    }
  }
  return failures;
}

function seedCount(text: string | undefined): number {
  if (text === undefined) return 2000;
  const count = Number(text);
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new Error(`WEIR_SIM_SEEDS must be a positive integer, got ${text}`);
  }
  return count;
}
