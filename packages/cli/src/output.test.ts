import { WeirError } from '@weir/client';
import { ErrorCode } from '@weir/protocol';
import { describe, expect, it } from 'vitest';
import { formatIds, formatPairs, formatTable, toJson } from './output.js';

describe('formatTable', () => {
  it('pads each column to its widest cell, with no trailing spaces', () => {
    expect(
      formatTable(
        ['ID', 'NAME', 'X'],
        [
          ['1', 'a-long-name', ''],
          ['100', 'b', 'z'],
        ],
      ),
    ).toBe('ID   NAME         X\n1    a-long-name\n100  b            z\n');
  });

  it('prints just the header for no rows', () => {
    expect(formatTable(['A', 'B'], [])).toBe('A  B\n');
  });
});

describe('formatPairs and formatIds', () => {
  it('aligns the values after the labels', () => {
    expect(
      formatPairs([
        ['Topic', 'orders'],
        ['Replication factor', '3'],
      ]),
    ).toBe('Topic:               orders\nReplication factor:  3\n');
  });

  it('joins ids with commas, and shows none as a dash', () => {
    expect(formatIds([1, 2, 3])).toBe('1,2,3');
    expect(formatIds([])).toBe('-');
  });
});

describe('toJson', () => {
  it('writes bigints as exact decimal strings and WeirErrors as code, name and message', () => {
    const document = toJson({
      offset: 2n ** 63n - 1n,
      error: new WeirError(ErrorCode.NOT_CONTROLLER, 'no leader yet'),
    });
    expect(JSON.parse(document)).toEqual({
      offset: '9223372036854775807',
      error: { code: 41, name: 'NOT_CONTROLLER', message: 'no leader yet' },
    });
    expect(document.endsWith('}\n')).toBe(true);
  });
});
