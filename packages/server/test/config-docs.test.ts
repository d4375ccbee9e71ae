// docs/operations.md carries the options table generated from the schema, unchanged.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_TABLE_END,
  CONFIG_TABLE_START,
  SERVER_OPTIONS,
  configReferenceMarkdown,
  envName,
  flagName,
  replaceConfigTable,
} from '../src/index.js';

const OPERATIONS_MD = fileURLToPath(new URL('../../../docs/operations.md', import.meta.url));
const REGENERATE =
  'TSX_TSCONFIG_PATH=tsconfig.sources.json node --import tsx packages/server/bin/config-docs.ts';

describe('the options table in docs/operations.md', () => {
  it('is the one generated from the schema', () => {
    const markdown = readFileSync(OPERATIONS_MD, 'utf8');
    const start = markdown.indexOf(CONFIG_TABLE_START);
    const end = markdown.indexOf(CONFIG_TABLE_END);
    expect(start, `${OPERATIONS_MD} has no ${CONFIG_TABLE_START}`).toBeGreaterThanOrEqual(0);
    expect(end, `${OPERATIONS_MD} has no ${CONFIG_TABLE_END} after the start`).toBeGreaterThan(
      start,
    );
    const section = markdown.slice(start + CONFIG_TABLE_START.length, end);
    expect(section.trim(), `the table is stale: run ${REGENERATE}`).toBe(
      configReferenceMarkdown().trim(),
    );
    expect(replaceConfigTable(markdown), `run ${REGENERATE}`).toBe(markdown);
  });

  it('has a row per option with its flag, env variable and default', () => {
    const rows = configReferenceMarkdown().trimEnd().split('\n').slice(2);
    expect(rows).toHaveLength(SERVER_OPTIONS.length);
    SERVER_OPTIONS.forEach((option, index) => {
      const cells = rows[index]!.split(' | ').map((cell) => cell.replace(/^\| |\s*\|?$/g, ''));
      expect(cells.slice(0, 3)).toEqual([
        `\`${option.name}\``,
        `\`--${flagName(option.name)}\``,
        `\`${envName(option.name)}\``,
      ]);
    });
    expect(rows[0]).toContain('_required_');
    expect(rows.find((row) => row.startsWith('| `broker.port`'))).toContain('`9092`');
  });
});
