// The options reference in docs/operations.md, rendered from the schema. A test fails when the
// document and the schema differ; `bin/config-docs.ts` rewrites the section.

import { type ServerOption, SERVER_OPTIONS, envName, flagName } from './schema.js';

export const CONFIG_TABLE_START = '<!-- config-table:start -->';
export const CONFIG_TABLE_END = '<!-- config-table:end -->';

/** The markdown table of every `weir server` option: option | flag | env | default | description. */
export function configReferenceMarkdown(): string {
  const rows = (SERVER_OPTIONS as readonly ServerOption[]).map((option) =>
    [
      code(option.name),
      code(`--${flagName(option.name)}`),
      code(envName(option.name)),
      defaultCell(option),
      describe(option),
    ].map(escapeCell),
  );
  return alignedTable(['Option', 'Flag', 'Env', 'Default', 'Description'], rows);
}

/** A table padded the way Prettier formats markdown, so `prettier --check` leaves it alone. */
function alignedTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) =>
    Math.max(3, title.length, ...rows.map((row) => row[column]?.length ?? 0)),
  );
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  const delimiter = `| ${widths.map((width) => '-'.repeat(width)).join(' | ')} |`;
  return [line(header), delimiter, ...rows.map(line)].map((text) => `${text}\n`).join('');
}

/**
 * `markdown` with the text between the config-table markers replaced by the current table.
 * Throws when the markers are missing or out of order.
 */
export function replaceConfigTable(markdown: string): string {
  const start = markdown.indexOf(CONFIG_TABLE_START);
  const end = markdown.indexOf(CONFIG_TABLE_END);
  if (start < 0 || end < start) {
    throw new Error(`expected ${CONFIG_TABLE_START} followed by ${CONFIG_TABLE_END}`);
  }
  // Blank lines around the table, as Prettier puts them.
  const section = `\n\n${configReferenceMarkdown()}\n`;
  return `${markdown.slice(0, start + CONFIG_TABLE_START.length)}${section}${markdown.slice(end)}`;
}

function defaultCell(option: ServerOption): string {
  if (option.required === true) return '_required_';
  if (option.default === undefined) return '';
  return code(Array.isArray(option.default) ? option.default.join(',') : String(option.default));
}

function describe(option: ServerOption): string {
  const allowed = option.type === 'enum' || option.type === 'list' ? option.values : undefined;
  const rule =
    allowed === undefined
      ? range(option)
      : ` ${option.type === 'list' ? 'Comma-separated, from' : 'One of'}: ${allowed.join(', ')}.`;
  return `${option.doc}${rule}`;
}

function range(option: ServerOption): string {
  if (option.type !== 'int') return '';
  if (option.min !== undefined && option.max !== undefined) {
    return ` ${option.min} to ${option.max}.`;
  }
  if (option.min !== undefined) return ` At least ${option.min}.`;
  return '';
}

function code(text: string): string {
  return `\`${text}\``;
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|');
}
