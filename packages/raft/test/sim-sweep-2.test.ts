// The second half of the CI seed sweep (see sim-sweep.ts): 3- and 5-node clusters under faults,
// every invariant checked after every event, linearizability and liveness at the end.

import { expect, it } from 'vitest';
import { SWEEP_SEEDS, SWEEP_TIMEOUT_MS, sweep } from './sim-sweep.js';

it(
  'the second half of the seeds finds no violation',
  () => {
    const failures = sweep(Math.ceil(SWEEP_SEEDS / 2) + 1, SWEEP_SEEDS);
    expect(failures, failures.join('\n\n')).toEqual([]);
  },
  SWEEP_TIMEOUT_MS,
);
