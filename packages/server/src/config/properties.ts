// The Java-properties subset Weir reads and writes (`server.properties`, `meta.properties`):
// one `key=value` per line, `#` or `!` starts a comment line, blank lines are skipped, and
// whitespace around keys and values is trimmed. Unlike java.util.Properties there are no `\`
// escapes, no line continuations and no `:` or space separators, so a Windows path or a
// `host:port` value reads as written. A key given twice is an error rather than "last wins",
// because a silently shadowed setting is a misconfiguration nobody notices.

import { ErrorCode, WeirError, assert } from '@weir/protocol';

export interface PropertyEntry {
  readonly key: string;
  readonly value: string;
  /** 1-based line number in the text, for error messages. */
  readonly line: number;
}

const LINE_BREAK = /\r\n|\r|\n/;
const WHITESPACE = /\s/;

function isComment(trimmed: string): boolean {
  return trimmed.startsWith('#') || trimmed.startsWith('!');
}

/**
 * Parses `text` into its entries in file order. `origin` names the text in errors (usually the
 * file path). Throws WeirError INVALID_CONFIG, and nothing else, for any malformed input.
 */
export function parseProperties(text: string, origin: string): PropertyEntry[] {
  const entries: PropertyEntry[] = [];
  const firstLine = new Map<string, number>();
  text.split(LINE_BREAK).forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || isComment(trimmed)) return;
    const separator = trimmed.indexOf('=');
    if (separator < 0) {
      throw propertiesError(origin, line, `expected key=value, got ${JSON.stringify(trimmed)}`);
    }
    const key = trimmed.slice(0, separator).trim();
    if (key === '') throw propertiesError(origin, line, 'the key before "=" is empty');
    if (WHITESPACE.test(key)) {
      throw propertiesError(origin, line, `the key ${JSON.stringify(key)} contains whitespace`);
    }
    const earlier = firstLine.get(key);
    if (earlier !== undefined) {
      throw propertiesError(origin, line, `${key} is already set on line ${earlier}`);
    }
    firstLine.set(key, line);
    entries.push({ key, value: trimmed.slice(separator + 1).trim(), line });
  });
  return entries;
}

/** Whether `formatProperties` can write `key` so that `parseProperties` reads it back. */
export function isWritableKey(key: string): boolean {
  return key !== '' && !key.includes('=') && !WHITESPACE.test(key) && !isComment(key);
}

/** Whether `formatProperties` can write `value` so that `parseProperties` reads it back. */
export function isWritableValue(value: string): boolean {
  return !LINE_BREAK.test(value) && value.trim() === value;
}

/** The text of `entries` in the format `parseProperties` reads, after optional comment lines. */
export function formatProperties(
  entries: Iterable<readonly [string, string]>,
  comments: readonly string[] = [],
): string {
  const lines = comments.map((comment) => {
    assert(!LINE_BREAK.test(comment), () => `comment ${JSON.stringify(comment)} spans lines`);
    return `# ${comment}`;
  });
  const written = new Set<string>();
  for (const [key, value] of entries) {
    assert(isWritableKey(key), () => `property key ${JSON.stringify(key)} cannot be written`);
    assert(!written.has(key), () => `property key ${key} is given twice`);
    written.add(key);
    assert(
      isWritableValue(value),
      () => `value ${JSON.stringify(value)} of ${key} cannot be written`,
    );
    lines.push(`${key}=${value}`);
  }
  return lines.map((line) => `${line}\n`).join('');
}

function propertiesError(origin: string, line: number, problem: string): WeirError {
  return new WeirError(ErrorCode.INVALID_CONFIG, `${origin}:${line}: ${problem}`);
}
