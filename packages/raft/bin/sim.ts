// `pnpm sim`: runs the deterministic Raft simulator over many seeds, or replays one.
//   pnpm sim --seeds 5000 --nodes 5              5,000 seeds of a 5-node cluster
//   pnpm sim --seeds 2000                        the CI mix: 3 and 5 nodes, two fault profiles
//   pnpm sim --seed 42 --nodes 5 --ticks 300 --trace   replay one seed with its event trace
// --seed S with --seeds N runs seeds S..S+N-1; with neither, seeds 1..100.
// Options: --faults none|default|elections, --variant none|forgetVote|sendBeforePersist|staleReads
// (deliberately broken drivers), --end-to-end-only (no node-local rules), --keep-going.
// A failure prints the seed, the command that replays it and the last events before it.

import { parseArgs } from 'node:util';
import {
  type FaultProfileName,
  type SimOptions,
  SimulationFailure,
  type Variant,
  runSimulation,
  sweepOptions,
} from '../src/sim/index.js';

const TAIL_LINES = 80;

interface CliOptions {
  readonly first: number;
  readonly count: number;
  readonly trace: boolean;
  readonly keepGoing: boolean;
  /** Only what the command line set: the rest follows the seed (see sweepOptions). */
  readonly overrides: Partial<SimOptions>;
}

const FAULTS: readonly FaultProfileName[] = ['none', 'default', 'elections'];
const VARIANTS: readonly Variant[] = ['none', 'forgetVote', 'sendBeforePersist', 'staleReads'];

function parse(): CliOptions {
  try {
    return parseFlags();
  } catch (error) {
    return usage(error instanceof Error ? error.message : String(error));
  }
}

function parseFlags(): CliOptions {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string' },
      seed: { type: 'string' },
      nodes: { type: 'string' },
      ticks: { type: 'string' },
      faults: { type: 'string' },
      variant: { type: 'string' },
      'end-to-end-only': { type: 'boolean', default: false },
      trace: { type: 'boolean', default: false },
      'keep-going': { type: 'boolean', default: false },
    },
  });
  const seed = values.seed === undefined ? undefined : integer('--seed', values.seed);
  const overrides: Partial<Mutable<SimOptions>> = {};
  if (values.nodes !== undefined) overrides.nodes = integer('--nodes', values.nodes);
  if (values.ticks !== undefined) overrides.ticks = integer('--ticks', values.ticks);
  if (values.faults !== undefined) overrides.faults = oneOf('--faults', values.faults, FAULTS);
  if (values.variant !== undefined)
    overrides.variant = oneOf('--variant', values.variant, VARIANTS);
  if (values['end-to-end-only']) overrides.localRules = false;
  return {
    first: seed ?? 1,
    count:
      values.seeds === undefined
        ? seed === undefined
          ? 100
          : 1
        : integer('--seeds', values.seeds),
    trace: values.trace,
    keepGoing: values['keep-going'],
    overrides,
  };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function integer(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0)
    usage(`${flag} wants a non-negative integer, got ${text}`);
  return value;
}

function oneOf<T extends string>(flag: string, text: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(text))
    usage(`${flag} is one of ${allowed.join(', ')}; got ${text}`);
  return text as T;
}

function usage(problem: string): never {
  console.error(`sim: ${problem}\n(see the header of packages/raft/bin/sim.ts for the flags)`);
  process.exit(2);
}

function main(): void {
  const cli = parse();
  const startMs = performance.now();
  let failures = 0;
  let events = 0;
  let ops = 0;
  for (let seed = cli.first; seed < cli.first + cli.count; seed++) {
    const options = sweepOptions(seed, cli.overrides);
    try {
      const result = runSimulation(
        cli.trace ? { ...options, trace: (line) => console.log(line) } : options,
      );
      events += result.stats.events;
      ops += result.stats.opsCompleted;
      if (cli.count === 1)
        console.log(`seed ${seed}: ok, fingerprint ${result.fingerprint}`, result.stats);
    } catch (error) {
      if (!(error instanceof SimulationFailure)) throw error;
      failures++;
      report(error, cli.trace);
      if (!cli.keepGoing) break;
    }
  }
  const seconds = (performance.now() - startMs) / 1000;
  console.log(
    `${cli.count} seeds in ${seconds.toFixed(1)}s (${(cli.count / seconds).toFixed(1)} seeds/s, ` +
      `${events} events, ${ops} client operations): ${failures === 0 ? 'no violations' : `${failures} FAILED`}`,
  );
  process.exitCode = failures === 0 ? 0 : 1;
}

/** Prints the failure, then replays the seed to show the events that led to it. */
function report(failure: SimulationFailure, traced: boolean): void {
  console.error(`\n${failure.message}`);
  if (traced) return;
  const tail: string[] = [];
  try {
    runSimulation({
      ...failure.options,
      trace: (line) => {
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
      },
    });
  } catch {
    // The replay fails the same way: that is the point.
  }
  console.error(`last ${tail.length} events before it:\n${tail.join('\n')}\n`);
}

main();
