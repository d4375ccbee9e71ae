// The `weir dev` and `weir server` commands as a user runs them: real executables, real
// signals, real files.

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ensureMetaProperties } from '@weir/server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClusterFile } from '../src/dev/dev-cluster.js';
import {
  WEIR_COMMAND,
  WEIR_ENV,
  freeBasePort,
  runWeir,
  waitFor,
} from './fixtures/process-cluster.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-commands-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('weir dev', () => {
  it('prints the ready line, writes cluster.json, and stops every node on Ctrl-C', async () => {
    const base = await freeBasePort(3);
    const dev = spawn(
      WEIR_COMMAND[0]!,
      [
        ...WEIR_COMMAND.slice(1),
        'dev',
        '--base-port',
        String(base),
        '--data-dir',
        dir,
        // Extra `weir server` flags for every node.
        '--',
        '--log-format',
        'json',
      ],
      { env: WEIR_ENV, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) => dev.once('exit', resolve));
    let stderr = '';
    dev.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const lines: string[] = [];
    createInterface({ input: dev.stdout }).on('line', (line) => lines.push(line));
    try {
      const ready = await waitFor(
        'the ready line',
        () => lines.find((line) => line.startsWith('cluster ready:')),
        60_000,
      );
      expect(ready).toBe(
        `cluster ready: bootstrap=127.0.0.1:${base},127.0.0.1:${base + 10},127.0.0.1:${base + 20}`,
      );
      // Every node's log lines come prefixed with its name, and the extra flag reached them.
      for (const id of [1, 2, 3]) {
        const own = lines.filter((line) => line.startsWith(`[node-${id}] `));
        expect(own.length).toBeGreaterThan(0);
        for (const line of own) expect(line).toMatch(/^\[node-\d\] \{"level":/);
      }
      const file = JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
      expect(
        file.nodes.map(({ id, brokerPort, controllerPort, httpPort }) => ({
          id,
          brokerPort,
          controllerPort,
          httpPort,
        })),
      ).toEqual(
        [1, 2, 3].map((id) => ({
          id,
          brokerPort: base + 10 * (id - 1),
          controllerPort: base + 10 * (id - 1) + 1,
          httpPort: base + 10 * (id - 1) + 2,
        })),
      );
      const pids = file.nodes.map((node) => node.pid!);
      expect(pids.every(processAlive)).toBe(true);
      const status = await runWeir([
        'cluster',
        'status',
        '--json',
        '--bootstrap',
        `127.0.0.1:${base}`,
      ]);
      expect(status.code).toBe(0);
      const { brokers } = JSON.parse(status.stdout) as { brokers: { state: string }[] };
      expect(brokers.map((broker) => broker.state)).toEqual(['unfenced', 'unfenced', 'unfenced']);

      dev.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(pids.filter(processAlive)).toEqual([]);
      expect(stderr).toContain('all nodes stopped');
    } finally {
      dev.kill('SIGKILL');
    }
  }, 90_000);

  it('refuses a data dir that holds a cluster of another size', async () => {
    const base = await freeBasePort(3);
    await writeFile(
      join(dir, 'cluster.json'),
      JSON.stringify({
        clusterId: 'weir-dev-x',
        bootstrap: '',
        nodes: [{ id: 1 }, { id: 2 }, { id: 3 }],
      }),
    );
    const result = await runWeir([
      'dev',
      '--nodes',
      '1',
      '--base-port',
      String(base),
      '--data-dir',
      dir,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('holds a 3-node cluster; run with --nodes 3');
  });
});

describe('weir server', () => {
  const serverArgs = (nodeId: number, clusterId: string, base: number): string[] => [
    'server',
    '--node-id',
    String(nodeId),
    '--cluster-id',
    clusterId,
    '--controller-quorum-voters',
    `${nodeId}@127.0.0.1:${base + 1}`,
    '--data-dir',
    dir,
    '--broker-port',
    String(base),
    '--controller-port',
    String(base + 1),
    '--http-port',
    String(base + 2),
  ];

  it('stops at start-up when meta.properties names another node', async () => {
    await ensureMetaProperties({ dataDir: dir, nodeId: 1, clusterId: 'cluster-a' });
    const result = await runWeir(serverArgs(2, 'cluster-a', await freeBasePort(1)));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'INVALID_CONFIG: ' + join(dir, 'meta.properties') + ' belongs to node 1, but this is node 2',
    );
  });

  it('stops at start-up when meta.properties names another cluster', async () => {
    await ensureMetaProperties({ dataDir: dir, nodeId: 1, clusterId: 'cluster-a' });
    const result = await runWeir(serverArgs(1, 'cluster-b', await freeBasePort(1)));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'INCONSISTENT_CLUSTER_ID: ' +
        join(dir, 'meta.properties') +
        ' belongs to cluster cluster-a, but --cluster-id is cluster-b',
    );
  });

  it('reports a bad option with its source', async () => {
    const result = await runWeir(['server', '--node-id', '1'], { WEIR_BROKER_PORT: 'abc' });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('WEIR_BROKER_PORT');
  });
});
