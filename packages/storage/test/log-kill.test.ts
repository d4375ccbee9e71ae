// Durability under SIGKILL: a real child process appends with flush `always` from several
// concurrent appenders and records each acknowledged append in a side file (synchronously,
// before that appender goes on). The parent kills it at a random moment, reopens the log and
// checks that every acknowledged append is there with the same content.
//
// The child runs under tsx outside vitest; TSX_TSCONFIG_PATH points it at
// tsconfig.sources.json, whose `paths` resolve @weir/* to the packages' sources as vitest's
// alias does, so the test needs no build.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Log } from '../src/log.js';
import { KILL_TEST_LOG_CONFIG, valuesHash } from './fixtures/kill-test-shared.js';
import { batchesOf, removeDir, tempDir, waitFor } from './helpers.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/append-until-killed.ts', import.meta.url));
const sourcesTsconfig = fileURLToPath(new URL('../../../tsconfig.sources.json', import.meta.url));

const ROUNDS = 4;
const APPENDERS = 4;
/** Acknowledgements to wait for before the kill may come; a random number more follow. */
const MIN_ACKS = 40;
const MAX_EXTRA_ACKS = 160;

interface Ack {
  readonly baseOffset: bigint;
  readonly lastOffset: bigint;
  readonly hash: string;
}

/** The complete lines of the side file; a line cut by the kill has no newline yet. */
function readAcks(path: string): Ack[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.pop();
  return lines.map((line) => {
    const [base, last, hash] = line.split(':');
    return { baseOffset: BigInt(base!), lastOffset: BigInt(last!), hash: hash! };
  });
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
    } else {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    }
  });
}

let dir: string;
beforeEach(async () => {
  dir = await tempDir('kill');
});
afterEach(async () => {
  await removeDir(dir);
});

describe('Log under SIGKILL', () => {
  it('keeps every append it acknowledged with flush always', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const logDir = join(dir, `round-${round}`);
      const ackPath = join(dir, `round-${round}.acks`);
      const killAfter = MIN_ACKS + Math.floor(Math.random() * MAX_EXTRA_ACKS);
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', fixture, logDir, ackPath, String(APPENDERS)],
        {
          cwd: packageDir,
          env: { ...process.env, TSX_TSCONFIG_PATH: sourcesTsconfig },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = exitOf(child);
      try {
        await waitFor(
          `${killAfter} acknowledged appends`,
          () => child.exitCode !== null || readAcks(ackPath).length >= killAfter,
          { timeoutMs: 30_000, intervalMs: 2 },
        );
        expect(child.exitCode, `the child exited early:\n${stderr}`).toBeNull();
        child.kill('SIGKILL');
        expect(await exited).toEqual({ code: null, signal: 'SIGKILL' });
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
      }

      const acks = readAcks(ackPath);
      expect(acks.length).toBeGreaterThanOrEqual(killAfter);
      await expectAcknowledgedAppends(logDir, acks);
    }
  }, 90_000);
});

async function expectAcknowledgedAppends(logDir: string, acks: readonly Ack[]): Promise<void> {
  const log = await Log.open(logDir, { config: KILL_TEST_LOG_CONFIG });
  try {
    expect(log.openReport.cleanShutdown).toBe(false);
    const highestAcked = acks.reduce(
      (max, ack) => (ack.lastOffset > max ? ack.lastOffset : max),
      -1n,
    );
    expect(log.logEndOffset).toBeGreaterThan(highestAcked);
    for (const ack of acks) {
      const [batch] = batchesOf((await log.read(ack.baseOffset, 1)).records);
      expect(batch, `acknowledged batch at ${ack.baseOffset}`).toBeDefined();
      expect([batch!.baseOffset, batch!.lastOffset]).toEqual([ack.baseOffset, ack.lastOffset]);
      const values = [...batch!.records()].map((record) => record.value!.toString('utf8'));
      expect(valuesHash(values), `content of the batch at ${ack.baseOffset}`).toBe(ack.hash);
    }
    // Whatever else survived (appends written but not yet acknowledged) is whole and in order.
    let offset = log.logStartOffset;
    while (offset < log.logEndOffset) {
      const batches = batchesOf((await log.read(offset, 256 * 1024)).records);
      expect(batches[0]!.baseOffset).toBe(offset);
      for (const batch of batches) {
        expect(batch.baseOffset).toBe(offset);
        offset = batch.nextOffset;
      }
    }
    // And the log goes on from where recovery left it.
    const end = log.logEndOffset;
    const [last] = batchesOf((await log.read(end - 1n, 1)).records);
    expect(last!.nextOffset).toBe(end);
  } finally {
    await log.close();
  }
}
