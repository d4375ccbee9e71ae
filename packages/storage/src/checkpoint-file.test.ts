import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, isWeirError } from '@weir/protocol';
import {
  decodeCheckpoint,
  decodeTopicPartitionOffsets,
  encodeCheckpoint,
  encodeTopicPartitionOffsets,
  readTopicPartitionOffsets,
  writeTopicPartitionOffsets,
  readCheckpointFile,
  readOffsetCheckpoint,
  writeCheckpointFile,
  writeOffsetCheckpoint,
} from './checkpoint-file.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-checkpoint-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function expectCorrupt(action: () => unknown, ...fragments: string[]): void {
  try {
    action();
  } catch (error) {
    expect(isWeirError(error, ErrorCode.CORRUPT_STORE)).toBe(true);
    for (const fragment of fragments) expect((error as Error).message).toContain(fragment);
    return;
  }
  expect.fail('expected a CORRUPT_STORE error');
}

describe('writeCheckpointFile / readCheckpointFile', () => {
  it('reads undefined for a missing file', async () => {
    expect(await readCheckpointFile(join(dir, 'absent'))).toBeUndefined();
  });

  it('replaces the content and leaves no temporary file behind', async () => {
    const path = join(dir, 'checkpoint');
    await writeCheckpointFile(path, 'first\n');
    await writeCheckpointFile(path, 'second\n');
    expect(await readCheckpointFile(path)).toBe('second\n');
    expect(await readdir(dir)).toEqual(['checkpoint']);
  });

  it('ignores a stale .tmp left by a crash between write and rename', async () => {
    const path = join(dir, 'checkpoint');
    await writeCheckpointFile(path, 'committed\n');
    await writeFile(`${path}.tmp`, 'torn');
    expect(await readCheckpointFile(path)).toBe('committed\n');
    await writeCheckpointFile(path, 'next\n');
    expect(await readFile(path, 'utf8')).toBe('next\n');
  });

  it('runs overlapping writes to one file in call order', async () => {
    const path = join(dir, 'checkpoint');
    await Promise.all(
      Array.from({ length: 20 }, (_, n) => writeCheckpointFile(path, `${n}\n`.repeat(n * 1000))),
    );
    expect(await readCheckpointFile(path)).toBe('19\n'.repeat(19_000));
    expect(await readdir(dir)).toEqual(['checkpoint']);
  });

  it('reports an I/O failure as KAFKA_STORAGE_ERROR', async () => {
    const path = join(dir, 'no-such-folder', 'checkpoint');
    await expect(writeCheckpointFile(path, 'x')).rejects.toSatisfy((error) =>
      isWeirError(error, ErrorCode.KAFKA_STORAGE_ERROR),
    );
  });
});

describe('encodeCheckpoint / decodeCheckpoint', () => {
  const line = fc.stringMatching(/^[0-9a-z ]{0,20}$/);

  it('round-trips any entries', () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 20 }), (entries) => {
        expect(decodeCheckpoint('f', encodeCheckpoint(0, entries), 0)).toEqual(entries);
      }),
    );
  });

  it('throws only CORRUPT_STORE for arbitrary content', () => {
    fc.assert(
      fc.property(fc.string(), (content) => {
        try {
          decodeCheckpoint('f', content, 0);
        } catch (error) {
          expect(isWeirError(error, ErrorCode.CORRUPT_STORE)).toBe(true);
        }
      }),
    );
  });

  it('rejects a truncated copy of a valid file', () => {
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 5 }), fc.nat(), (entries, cut) => {
        const content = encodeCheckpoint(0, entries);
        const torn = content.slice(0, cut % content.length);
        expectCorrupt(() => decodeCheckpoint('f', torn, 0));
      }),
    );
  });

  it('names the file and the problem', () => {
    expectCorrupt(() => decodeCheckpoint('/x/cp', '1\n0\n', 0), '/x/cp', 'version');
    expectCorrupt(
      () => decodeCheckpoint('/x/cp', '0\n2\na\n', 0),
      'declares 2 entries but holds 1',
    );
    expectCorrupt(() => decodeCheckpoint('/x/cp', '0\n-1\n', 0), 'count');
    expectCorrupt(() => decodeCheckpoint('/x/cp', '0\n1\na', 0), 'newline');
    expectCorrupt(() => decodeCheckpoint('/x/cp', '', 0), 'empty');
  });
});

describe('offset checkpoint', () => {
  it('round-trips offsets up to Long.MaxValue', async () => {
    const path = join(dir, 'recovery-point-checkpoint');
    for (const offset of [0n, 42n, (1n << 63n) - 1n]) {
      await writeOffsetCheckpoint(path, offset);
      expect(await readOffsetCheckpoint(path)).toBe(offset);
    }
    expect(await readFile(path, 'utf8')).toBe(`0\n1\n${(1n << 63n) - 1n}\n`);
  });

  it('reads undefined when absent', async () => {
    expect(await readOffsetCheckpoint(join(dir, 'log-start-offset-checkpoint'))).toBeUndefined();
  });

  it('refuses to write a negative offset', async () => {
    await expect(writeOffsetCheckpoint(join(dir, 'cp'), -1n)).rejects.toSatisfy((error) =>
      isWeirError(error, ErrorCode.ILLEGAL_STATE),
    );
  });

  it.each([
    ['0\n1\n-5\n', 'offset'],
    ['0\n1\n007\n', 'offset'],
    ['0\n1\n9223372036854775808\n', 'offset'],
    ['0\n2\n1\n2\n', 'exactly 1'],
    ['0\n0\n', 'exactly 1'],
    ['7\n1\n5\n', 'version'],
  ])('rejects %j as CORRUPT_STORE mentioning %s', async (content, fragment) => {
    const path = join(dir, 'recovery-point-checkpoint');
    await writeFile(path, content);
    await expect(readOffsetCheckpoint(path)).rejects.toSatisfy(
      (error) =>
        isWeirError(error, ErrorCode.CORRUPT_STORE) &&
        error.message.includes(path) &&
        error.message.includes(fragment),
    );
  });
});

describe('topic-partition offsets (replication-offset-checkpoint)', () => {
  const entry = fc.record({
    topic: fc.stringMatching(/^[a-zA-Z0-9._-]{1,20}$/),
    partition: fc.integer({ min: 0, max: 0x7fff_ffff }),
    offset: fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }),
  });
  const entries = fc.uniqueArray(entry, { selector: (e) => `${e.topic} ${e.partition}` });

  it('writes and reads the entries back; a missing file is undefined', async () => {
    const path = join(dir, 'replication-offset-checkpoint');
    expect(await readTopicPartitionOffsets(path)).toBeUndefined();
    const written = [
      { topic: 'orders', partition: 0, offset: 42n },
      { topic: 'orders', partition: 1, offset: 0n },
    ];
    await writeTopicPartitionOffsets(path, written);
    expect(await readFile(path, 'utf8')).toBe('0\n2\norders 0 42\norders 1 0\n');
    expect(await readTopicPartitionOffsets(path)).toEqual(written);
  });

  it('round-trips any entries (property)', () => {
    fc.assert(
      fc.property(entries, (list) => {
        expect(decodeTopicPartitionOffsets('p', encodeTopicPartitionOffsets(list))).toEqual(list);
      }),
    );
  });

  it('names what is wrong: fields, partition, offset, duplicates', () => {
    expectCorrupt(() => decodeTopicPartitionOffsets('p', '0\n1\norders 0\n'), 'entry 1');
    expectCorrupt(() => decodeTopicPartitionOffsets('p', '0\n1\norders -1 5\n'), 'partition');
    expectCorrupt(() => decodeTopicPartitionOffsets('p', '0\n1\norders 0 x\n'), 'offset');
    expectCorrupt(
      () => decodeTopicPartitionOffsets('p', '0\n2\na 0 1\na 0 2\n'),
      'a-0 appears twice',
    );
  });

  it('decodes any text to entries that encode back to it, or CORRUPT_STORE (property)', () => {
    const valid = encodeTopicPartitionOffsets([
      { topic: 'orders', partition: 3, offset: 1234n },
      { topic: 'audit.log', partition: 0, offset: 7n },
    ]);
    const texts = fc.oneof(
      fc.string(),
      fc
        .tuple(fc.nat(valid.length - 1), fc.string({ maxLength: 3 }))
        .map(([at, text]) => valid.slice(0, at) + text + valid.slice(at + 1)),
    );
    fc.assert(
      fc.property(texts, (text) => {
        try {
          const decoded = decodeTopicPartitionOffsets('p', text);
          expect(encodeTopicPartitionOffsets(decoded)).toBe(text);
        } catch (error) {
          expect(isWeirError(error, ErrorCode.CORRUPT_STORE)).toBe(true);
        }
      }),
    );
  });
});
