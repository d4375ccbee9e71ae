// What the weir command prints: aligned tables and key/value blocks for people, one JSON
// document for scripts (`--json`), with bigints as decimal strings so no offset loses digits.

import { WeirError, errorName } from '@weir/client';
import type { CliIo } from './io.js';

const COLUMN_GAP = '  ';

/**
 * Rows under a header, each column as wide as its widest cell, left-aligned (as kubectl
 * prints). No trailing spaces; every line ends with a newline.
 */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const all = [header, ...rows];
  const widths = header.map((_, column) =>
    Math.max(...all.map((row) => (row[column] ?? '').length)),
  );
  return all
    .map((row) =>
      widths
        .map((width, column) => (row[column] ?? '').padEnd(width))
        .join(COLUMN_GAP)
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

/** `Label:  value` lines with the values aligned. */
export function formatPairs(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([label]) => label.length + 1));
  return pairs
    .map(([label, value]) => `${`${label}:`.padEnd(width)}${COLUMN_GAP}${value}\n`)
    .join('');
}

/** A WeirError as the JSON output shows it: the code, its name, and the message after it. */
export function errorToJson(error: WeirError): { code: number; name: string; message: string } {
  const name = errorName(error.code);
  const message = error.message.startsWith(`${name}: `)
    ? error.message.slice(name.length + 2)
    : error.message;
  return { code: error.code, name, message };
}

/** One JSON document: bigints as strings, WeirErrors as {code, name, message}. */
export function toJson(value: unknown): string {
  return `${JSON.stringify(
    value,
    (_key, item: unknown) => {
      if (typeof item === 'bigint') return item.toString();
      if (item instanceof WeirError) return errorToJson(item);
      return item;
    },
    2,
  )}\n`;
}

export function writeJson(io: CliIo, value: unknown): void {
  io.stdout.write(toJson(value));
}

/** A list of numbers as `1,2,3`, or `-` when empty. */
export function formatIds(ids: readonly number[]): string {
  return ids.length === 0 ? '-' : ids.join(',');
}
