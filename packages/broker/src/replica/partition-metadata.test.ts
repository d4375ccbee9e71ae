import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, isWeirError } from '@weir/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  PARTITION_METADATA_FILE,
  decodePartitionMetadata,
  encodePartitionMetadata,
  readPartitionMetadata,
  writePartitionMetadata,
} from './partition-metadata.js';

describe('partition.metadata', () => {
  it('stores a topic id and reads it back; a folder without the file has none', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weir-partition-metadata-'));
    try {
      expect(await readPartitionMetadata(dir)).toBeUndefined();
      await writePartitionMetadata(dir, '3f1c1c5e-7a55-4a53-9d43-0b8a5e0c6a11');
      expect(await readPartitionMetadata(dir)).toBe('3f1c1c5e-7a55-4a53-9d43-0b8a5e0c6a11');
      await writeFile(join(dir, PARTITION_METADATA_FILE), 'version: 1\ntopic_id: x\n');
      await expect(readPartitionMetadata(dir)).rejects.toMatchObject({
        code: ErrorCode.CORRUPT_STORE,
      });
      await expect(readPartitionMetadata(dir)).rejects.toThrow(/version 1 is not 0/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('round-trips every UUID (property)', () => {
    fc.assert(
      fc.property(fc.uuid(), (topicId) => {
        expect(decodePartitionMetadata('p', encodePartitionMetadata(topicId))).toBe(topicId);
      }),
    );
  });

  it('decodes any text to a valid id or CORRUPT_STORE, never anything else (property)', () => {
    const valid = encodePartitionMetadata('3f1c1c5e-7a55-4a53-9d43-0b8a5e0c6a11');
    const texts = fc.oneof(
      fc.string({ unit: 'binary' }),
      // Valid content with a character changed, cut short or extended.
      fc
        .tuple(fc.nat(valid.length - 1), fc.string({ minLength: 0, maxLength: 3 }))
        .map(([at, text]) => valid.slice(0, at) + text + valid.slice(at + 1)),
    );
    fc.assert(
      fc.property(texts, (text) => {
        try {
          const topicId = decodePartitionMetadata('p', text);
          expect(encodePartitionMetadata(topicId)).toBe(text);
        } catch (error) {
          expect(isWeirError(error) && error.code === ErrorCode.CORRUPT_STORE).toBe(true);
        }
      }),
    );
  });
});
