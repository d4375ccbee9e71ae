// `weir produce`, `weir consume` and `weir perf` against a real three-node cluster of `weir
// server` processes (fixtures/process-cluster.ts), run in this process through runCli with
// standard input injected; Ctrl-C is tried on the real executable.

import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { ErrorCode, Weir } from '@weir/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/program.js';
import { ProcessCluster, WEIR_COMMAND, WEIR_ENV, waitFor } from './fixtures/process-cluster.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

let cluster: ProcessCluster;
let bootstrap: string;

/** Runs `weir ...args` in this process with `stdin` as standard input (a pipe, not a TTY). */
async function weir(args: readonly string[], stdin = ''): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: { WEIR_BOOTSTRAP: bootstrap },
    stdin: Readable.from([Buffer.from(stdin)]),
  });
  return { code, stdout, stderr };
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

async function createTopic(name: string, partitions: number): Promise<void> {
  await cluster.admin().createTopics({ topics: [{ name, partitions, replicationFactor: 3 }] });
  // Every broker knows the topic and its leaders before anything is sent to it.
  await waitFor(`the leaders of ${name}`, async () => {
    const views = await Promise.all(
      [1, 2, 3].map((id) => cluster.admin(id).describeTopics([name])),
    );
    return views.every(([topic]) => topic?.partitions.every((p) => p.leader !== null));
  });
}

beforeAll(async () => {
  cluster = await ProcessCluster.start(3);
  bootstrap = cluster.dev.bootstrap();
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

describe('weir produce and weir consume', () => {
  it('sends keyed lines and reads exactly those lines back with --print-key', async () => {
    await createTopic('lines', 3);
    const input = Array.from({ length: 30 }, (_, i) => `key-${i % 7}:value ${i}: with a colon`);
    const produced = await weir(
      ['produce', 'lines', '--key-separator', ':'],
      `${input.join('\n')}\n`,
    );
    expect(produced.stderr).toBe('');
    expect(produced.code).toBe(0);
    expect(produced.stdout).toMatch(/^Sent 30 records to lines in \d+\.\d\d s \(acks all\)\.\n/);
    expect(produced.stdout).toMatch(/PARTITION +RECORDS +FIRST OFFSET +LAST OFFSET/);

    const consumed = await weir([
      'consume',
      'lines',
      '--from-beginning',
      '--max-messages',
      '30',
      '--print-key',
      '--timeout-ms',
      '20000',
    ]);
    expect(consumed.code).toBe(0);
    expect(consumed.stderr).toBe('Consumed 30 messages.\n');
    const output = lines(consumed.stdout);
    const expected = input.map((line) => line.replace(':', '\t'));
    expect([...output].sort()).toEqual([...expected].sort());
    // Records of one key share a partition, so they come back in the order they were sent.
    for (let key = 0; key < 7; key++) {
      const ofKey = (all: string[]): string[] => all.filter((l) => l.startsWith(`key-${key}\t`));
      expect(ofKey(output)).toEqual(ofKey(expected));
    }
  });

  it('prints the summary and the records as JSON, with non-UTF-8 bytes as base64', async () => {
    await createTopic('json', 1);
    const produced = await weir(['produce', 'json', '--json'], 'first\n\nthird\n');
    expect(produced.code).toBe(0);
    expect(JSON.parse(produced.stdout)).toMatchObject({
      topic: 'json',
      acks: 'all',
      records: 3,
      partitions: [{ partition: 0, records: 3, firstOffset: '0', lastOffset: '2' }],
    });
    // A record the CLI cannot send from text: a binary key and value, and a header.
    const producer = new Weir({ bootstrap }).producer();
    await producer.connect();
    await producer.send({
      topic: 'json',
      messages: [
        { key: Buffer.from([0xff, 0x00]), value: Buffer.from([0xc3, 0x28]), headers: { h: 'v' } },
      ],
    });
    await producer.close();

    const consumed = await weir([
      'consume',
      'json',
      '--from-beginning',
      '--max-messages',
      '4',
      '--json',
      '--timeout-ms',
      '20000',
    ]);
    expect(consumed.code).toBe(0);
    const records = lines(consumed.stdout).map(
      (line) => JSON.parse(line) as Record<string, unknown>,
    );
    expect(
      records.map(({ timestamp, ...rest }) => ({ ...rest, timestamp: typeof timestamp })),
    ).toEqual([
      {
        topic: 'json',
        partition: 0,
        offset: '0',
        timestamp: 'string',
        key: null,
        value: 'first',
        headers: {},
      },
      {
        topic: 'json',
        partition: 0,
        offset: '1',
        timestamp: 'string',
        key: null,
        value: '',
        headers: {},
      },
      {
        topic: 'json',
        partition: 0,
        offset: '2',
        timestamp: 'string',
        key: null,
        value: 'third',
        headers: {},
      },
      {
        topic: 'json',
        partition: 0,
        offset: '3',
        timestamp: 'string',
        key: { base64: Buffer.from([0xff, 0x00]).toString('base64') },
        value: { base64: Buffer.from([0xc3, 0x28]).toString('base64') },
        headers: { h: 'v' },
      },
    ]);
    expect(Number(records[0]!.timestamp)).toBeGreaterThan(Date.now() - 120_000);
  });

  it('reads one partition from an offset, with --print-partition and --print-offset', async () => {
    await createTopic('offsets', 2);
    const input = Array.from({ length: 10 }, (_, i) => `record ${i}`);
    const produced = await weir(
      ['produce', 'offsets', '--partition', '1', '--acks', '1', '--json'],
      input.join('\n'),
    );
    expect(produced.code).toBe(0);
    expect(JSON.parse(produced.stdout)).toMatchObject({
      acks: 1,
      records: 10,
      partitions: [{ partition: 1, records: 10, firstOffset: '0', lastOffset: '9' }],
    });
    const consumed = await weir([
      'consume',
      'offsets',
      '--partition',
      '1',
      '--offset',
      '7',
      '--max-messages',
      '3',
      '--print-partition',
      '--print-offset',
      '--timeout-ms',
      '20000',
    ]);
    expect(consumed).toMatchObject({
      code: 0,
      stdout: '1\t7\trecord 7\n1\t8\trecord 8\n1\t9\trecord 9\n',
    });
  });

  it('fails with exit code 1 when --max-messages is not reached within --timeout-ms', async () => {
    const consumed = await weir([
      'consume',
      'offsets',
      '--partition',
      '1',
      '--from-beginning',
      '--max-messages',
      '11',
      '--timeout-ms',
      '3000',
    ]);
    expect(consumed.code).toBe(1);
    expect(lines(consumed.stdout)).toHaveLength(10);
    expect(consumed.stderr).toMatch(
      /^error: REQUEST_TIMED_OUT: read 10 of 11 messages within --timeout-ms 3000\n/,
    );
  });

  it('reports unknown topics and partitions, and a line without the key separator, with exit code 1', async () => {
    const unknown = await weir(['produce', 'no-such-topic'], 'x\n');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error: UNKNOWN_TOPIC_OR_PARTITION: .*no-such-topic/);
    const consumeUnknown = await weir(['consume', 'no-such-topic', '--json']);
    expect(consumeUnknown.code).toBe(1);
    expect(JSON.parse(consumeUnknown.stdout)).toMatchObject({
      error: { code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name: 'UNKNOWN_TOPIC_OR_PARTITION' },
    });
    const partition = await weir(['consume', 'offsets', '--partition', '2']);
    expect(partition.code).toBe(1);
    expect(partition.stderr).toMatch(/UNKNOWN_TOPIC_OR_PARTITION: .*there is no partition 2/);

    await createTopic('separator', 1);
    const bad = await weir(
      ['produce', 'separator', '--key-separator', '=', '--json'],
      'a=1\nb=2\nno separator here\nc=3\n',
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(
      'error: INVALID_RECORD: line 3 has no key separator "="; nothing after it was sent\n',
    );
    expect(JSON.parse(bad.stdout)).toMatchObject({
      error: { name: 'INVALID_RECORD' },
      sent: { records: 2, partitions: [{ partition: 0, records: 2 }] },
    });
  });

  it('prints a progress line on stderr once more than 5,000 records flow from a pipe', async () => {
    await createTopic('many', 3);
    const input = Array.from({ length: 6_000 }, (_, i) => `line ${i}`).join('\n');
    const produced = await weir(
      ['produce', 'many', '--progress-interval-ms', '1', '--json'],
      input,
    );
    expect(produced.stderr.split('\n').filter((l) => !l.startsWith('weir produce:'))).toEqual(['']);
    expect(produced.code).toBe(0);
    expect(JSON.parse(produced.stdout)).toMatchObject({ records: 6_000 });
    const progress = lines(produced.stderr);
    expect(progress.length).toBeGreaterThan(0);
    for (const line of progress) {
      expect(line).toMatch(/^weir produce: \d+ records read, \d+ acknowledged, \d+ records\/s$/);
      expect(Number(/(\d+) records read/.exec(line)![1])).toBeGreaterThanOrEqual(5_000);
    }
  });

  it('stops on SIGINT with exit code 0 after closing the consumer', async () => {
    const child = spawn(
      WEIR_COMMAND[0]!,
      [...WEIR_COMMAND.slice(1), 'consume', 'offsets', '--partition', '1', '--from-beginning'],
      { env: { ...WEIR_ENV, WEIR_BOOTSTRAP: bootstrap }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      await waitFor('the records on stdout', () => lines(stdout).length === 10);
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    expect(lines(stdout)).toEqual(Array.from({ length: 10 }, (_, i) => `record ${i}`));
    expect(stderr).toBe('Consumed 10 messages.\n');
  });
});

describe('weir perf', () => {
  it('produces 2,000 records and reads them back, with sensible figures', async () => {
    await createTopic('perf', 3);
    const produced = await weir([
      'perf',
      'produce',
      '--topic',
      'perf',
      '--records',
      '2000',
      '--record-size',
      '100',
      '--json',
    ]);
    expect(produced.stderr).not.toMatch(/error/);
    expect(produced.code).toBe(0);
    const result = JSON.parse(produced.stdout) as {
      records: number;
      recordsPerSec: number;
      mbPerSec: number;
      errors: number;
      latencyMs: Record<string, number>;
    };
    expect(result).toMatchObject({ records: 2000, requested: 2000, recordSize: 100, errors: 0 });
    expect(result.recordsPerSec).toBeGreaterThan(0);
    expect(result.mbPerSec).toBeCloseTo((result.recordsPerSec * 100) / 2 ** 20, 2);
    const { minMs, p50Ms, p95Ms, p99Ms, p999Ms, maxMs, avgMs } = result.latencyMs;
    expect(minMs).toBeGreaterThan(0);
    expect(minMs).toBeLessThanOrEqual(p50Ms!);
    expect(p50Ms).toBeLessThanOrEqual(p95Ms!);
    expect(p95Ms).toBeLessThanOrEqual(p99Ms!);
    expect(p99Ms).toBeLessThanOrEqual(p999Ms!);
    expect(p999Ms).toBeLessThanOrEqual(maxMs!);
    expect(avgMs).toBeLessThanOrEqual(maxMs!);

    const consumed = await weir([
      'perf',
      'consume',
      '--topic',
      'perf',
      '--records',
      '2000',
      '--json',
      '--max-duration-ms',
      '30000',
    ]);
    expect(consumed.code).toBe(0);
    const read = JSON.parse(consumed.stdout) as Record<string, number>;
    expect(read).toMatchObject({ records: 2000, bytes: 200_000 });
    expect(read.recordsPerSec).toBeGreaterThan(0);
    expect(read.mbPerSec).toBeGreaterThan(0);

    // And the text summaries, Kafka-style.
    const text = await weir([
      'perf',
      'produce',
      '--topic',
      'perf',
      '--records',
      '100',
      '--record-size',
      '10',
      '--acks',
      '1',
      '--throughput',
      '1000',
    ]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      /^100 records sent, [\d.]+ records\/s \([\d.]+ MB\/s\), [\d.]+ ms avg latency, [\d.]+ ms max latency, [\d.]+ ms 50th, [\d.]+ ms 95th, [\d.]+ ms 99th, [\d.]+ ms 99\.9th\.\n$/,
    );
  });
});

describe('flags that are not valid', () => {
  it('are usage errors (exit code 2) and nothing is sent', async () => {
    const cases: string[][] = [
      ['produce'],
      ['produce', 'lines', '--acks', '2'],
      ['produce', 'lines', '--partition', '-1'],
      ['produce', 'lines', '--key-separator', ''],
      ['consume', 'lines', '--from-beginning', '--offset', '3'],
      ['consume', 'lines', '--max-messages', 'abc'],
      ['consume', 'lines', '--offset', 'x'],
      ['consume', 'lines', '--bootstrap', 'http://x:1'],
      ['perf', 'produce', '--topic', 'perf', '--records', '10'],
      ['perf', 'produce', '--topic', 'perf', '--records', '0', '--record-size', '1'],
      [
        'perf',
        'produce',
        '--topic',
        'perf',
        '--records',
        '1',
        '--record-size',
        '1',
        '--throughput',
        '0',
      ],
      ['perf', 'consume', '--records', '10'],
      ['perf', 'nothing'],
    ];
    for (const args of cases) {
      const run = await weir(args, 'must not be sent\n');
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toMatch(/error: /);
      expect(run.stdout).toBe('');
    }
    // The produce attempts above sent nothing.
    const consumed = await weir([
      'consume',
      'lines',
      '--from-beginning',
      '--max-messages',
      '31',
      '--timeout-ms',
      '2000',
    ]);
    expect(lines(consumed.stdout)).toHaveLength(30);
  });
});
