// Rewrites the options table in docs/operations.md from the config schema:
//   TSX_TSCONFIG_PATH=tsconfig.sources.json node --import tsx packages/server/bin/config-docs.ts
// test/config-docs.test.ts fails until the document matches the schema.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { replaceConfigTable } from '../src/config/docs.js';

/** The repository root: the nearest folder above this script with pnpm-workspace.yaml. */
function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'pnpm-workspace.yaml'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the repository root (pnpm-workspace.yaml)');
    dir = parent;
  }
  return dir;
}

const path = join(repositoryRoot(), 'docs', 'operations.md');
const before = readFileSync(path, 'utf8');
const after = replaceConfigTable(before);
if (after === before) {
  console.log(`${path} is up to date`);
} else {
  writeFileSync(path, after);
  console.log(`rewrote the options table in ${path}`);
}
