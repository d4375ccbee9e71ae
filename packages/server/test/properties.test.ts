// The properties-file parser behind server.properties and meta.properties.

import { ErrorCode, WeirError } from '@weir/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatProperties, parseProperties } from '../src/index.js';

/** Keys the writer accepts: no whitespace or `=`, not starting like a comment. */
const key = fc
  .string({ minLength: 1, maxLength: 20 })
  .filter((k) => !/[\s=]/.test(k) && !k.startsWith('#') && !k.startsWith('!'));

/** Values the writer accepts: one line, no whitespace at either end. */
const value = fc.string({ maxLength: 40 }).filter((v) => !/[\r\n]/.test(v) && v.trim() === v);

describe('parseProperties', () => {
  it('reads key=value lines and skips comments and blank lines', () => {
    const text = '# comment\n! also a comment\n\n  a.b = 1 \r\nc=x=y\rd=\n e=C:\\data\\weir';
    expect(parseProperties(text, 'f')).toEqual([
      { key: 'a.b', value: '1', line: 4 },
      { key: 'c', value: 'x=y', line: 5 },
      { key: 'd', value: '', line: 6 },
      { key: 'e', value: 'C:\\data\\weir', line: 7 },
    ]);
  });

  it('names the origin and line of a malformed line', () => {
    expect(() => parseProperties('a=1\nnot a pair', 'server.properties')).toThrow(
      'INVALID_CONFIG: server.properties:2: expected key=value, got "not a pair"',
    );
    expect(() => parseProperties('=1', 'f')).toThrow('f:1: the key before "=" is empty');
    expect(() => parseProperties('a b=1', 'f')).toThrow('f:1: the key "a b" contains whitespace');
    expect(() => parseProperties('a=1\na=2', 'f')).toThrow('f:2: a is already set on line 1');
  });

  it('reads back what formatProperties wrote', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(key, value), { selector: ([k]) => k, maxLength: 12 }),
        fc.array(
          fc.string().filter((c) => !/[\r\n]/.test(c)),
          { maxLength: 3 },
        ),
        (entries, comments) => {
          const parsed = parseProperties(formatProperties(entries, comments), 'f');
          expect(parsed.map(({ key, value }) => [key, value])).toEqual(entries);
        },
      ),
    );
  });

  it('throws nothing but INVALID_CONFIG on garbage', () => {
    const garbage = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc
        .array(fc.constantFrom('a', '=', '#', '!', ' ', '\n', '\r', '\t', 'é', '\\', ':'), {
          maxLength: 40,
        })
        .map((chars) => chars.join('')),
    );
    fc.assert(
      fc.property(garbage, (text) => {
        try {
          parseProperties(text, 'f');
        } catch (error) {
          expect(error).toBeInstanceOf(WeirError);
          expect((error as WeirError).code).toBe(ErrorCode.INVALID_CONFIG);
        }
      }),
    );
  });
});

describe('formatProperties', () => {
  it('refuses what it could not read back', () => {
    expect(() => formatProperties([['a b', '1']])).toThrow('ILLEGAL_STATE');
    expect(() => formatProperties([['a', 'two\nlines']])).toThrow('ILLEGAL_STATE');
    expect(() => formatProperties([['a', ' padded']])).toThrow('ILLEGAL_STATE');
    expect(() =>
      formatProperties([
        ['a', '1'],
        ['a', '2'],
      ]),
    ).toThrow('ILLEGAL_STATE');
  });
});
