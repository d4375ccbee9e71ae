// ensureMetaProperties: formatting a fresh data dir and refusing another node's or cluster's.

import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, WeirError } from '@weir/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { META_PROPERTIES_FILE, ensureMetaProperties, readMetaProperties } from '../src/index.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'weir-meta-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>, code: ErrorCode): Promise<string> {
  const error: unknown = await promise.then(
    () => new Error('expected a rejection'),
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(WeirError);
  expect((error as WeirError).code).toBe(code);
  return (error as WeirError).message;
}

describe('ensureMetaProperties', () => {
  it('formats a fresh data dir, creating missing directories', async () => {
    const dataDir = join(root, 'nested', 'node-1');
    expect(await ensureMetaProperties({ dataDir, nodeId: 1, clusterId: 'c1' })).toEqual({
      clusterId: 'c1',
      nodeId: 1,
    });
    expect(await readFile(join(dataDir, META_PROPERTIES_FILE), 'utf8')).toBe(
      '# written by weir\nversion=1\ncluster.id=c1\nnode.id=1\n',
    );
    expect(await readdir(dataDir)).toEqual([META_PROPERTIES_FILE]);
  });

  it('accepts its own data dir with or without the cluster id', async () => {
    await ensureMetaProperties({ dataDir: root, nodeId: 2, clusterId: 'c1' });
    expect(await ensureMetaProperties({ dataDir: root, nodeId: 2, clusterId: 'c1' })).toEqual({
      clusterId: 'c1',
      nodeId: 2,
    });
    expect(await ensureMetaProperties({ dataDir: root, nodeId: 2 })).toEqual({
      clusterId: 'c1',
      nodeId: 2,
    });
  });

  it('accepts a file Kafka-style with extra keys', async () => {
    await writeFile(
      join(root, META_PROPERTIES_FILE),
      '#\n#Tue Jan 01 00:00:00 UTC 2030\ndirectory.id=xyz\nnode.id=0\ncluster.id=abc\nversion=1\n',
    );
    expect(await readMetaProperties(root)).toEqual({ clusterId: 'abc', nodeId: 0 });
  });

  it('refuses an unformatted data dir without a cluster id', async () => {
    const dataDir = join(root, 'empty');
    expect(
      await rejection(ensureMetaProperties({ dataDir, nodeId: 1 }), ErrorCode.INVALID_CONFIG),
    ).toBe(
      `INVALID_CONFIG: data dir ${dataDir} is not formatted (it has no meta.properties): pass --cluster-id to format it (weir dev picks one)`,
    );
    expect(await readMetaProperties(dataDir)).toBeUndefined();
  });

  it('refuses the data dir of another node, naming both ids and the file', async () => {
    await ensureMetaProperties({ dataDir: root, nodeId: 1, clusterId: 'c1' });
    const message = await rejection(
      ensureMetaProperties({ dataDir: root, nodeId: 2, clusterId: 'c1' }),
      ErrorCode.INVALID_CONFIG,
    );
    expect(message).toContain(`${join(root, META_PROPERTIES_FILE)} belongs to node 1`);
    expect(message).toContain('this is node 2: give node 2 its own data dir (--data-dir)');
  });

  it('refuses the data dir of another cluster, naming both ids', async () => {
    await ensureMetaProperties({ dataDir: root, nodeId: 1, clusterId: 'c1' });
    const message = await rejection(
      ensureMetaProperties({ dataDir: root, nodeId: 1, clusterId: 'c2' }),
      ErrorCode.INCONSISTENT_CLUSTER_ID,
    );
    expect(message).toContain('belongs to cluster c1, but --cluster-id is c2');
  });

  it('reports a corrupt file as CORRUPT_STORE naming the file', async () => {
    const path = join(root, META_PROPERTIES_FILE);
    const cases = [
      ['', 'version is missing'],
      ['garbage', 'expected key=value'],
      ['version=2\ncluster.id=c\nnode.id=1\n', 'version is "2"'],
      ['version=1\nnode.id=1\n', 'cluster.id is missing'],
      ['version=1\ncluster.id=c\nnode.id=01\n', 'node.id is "01"'],
      ['version=1\ncluster.id=c\nnode.id=x\n', 'node.id is "x"'],
      ['version=1\ncluster.id=c\n', 'node.id is missing'],
    ];
    for (const [content, problem] of cases) {
      await writeFile(path, content!);
      const message = await rejection(
        ensureMetaProperties({ dataDir: root, nodeId: 1, clusterId: 'c' }),
        ErrorCode.CORRUPT_STORE,
      );
      expect(message).toContain(`${path} is not a valid meta.properties`);
      expect(message).toContain(problem);
    }
  });

  it('refuses to write a cluster id the file format cannot hold', async () => {
    await rejection(
      ensureMetaProperties({ dataDir: root, nodeId: 1, clusterId: 'a\nnode.id=2' }),
      ErrorCode.INVALID_CONFIG,
    );
    expect(await readMetaProperties(root)).toBeUndefined();
  });
});
