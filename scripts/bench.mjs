#!/usr/bin/env node
// Runs every benchmark script (packages/*/bench/*.bench.ts) one after another, each in its own
// process so one benchmark's heap and page cache state do not skew the next.
//   pnpm bench              all benchmarks
//   pnpm bench crc log      only those whose path contains "crc" or "log"
//   pnpm bench metadata --topics 100   flags (`--name value`) go to every selected script
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filters = [];
const scriptArgs = [];
const args = process.argv.slice(2).filter((arg) => arg !== '--');
for (let i = 0; i < args.length; i++) {
  if (!args[i].startsWith('--')) filters.push(args[i]);
  else if (args[i].includes('=') || args[i + 1] === undefined || args[i + 1].startsWith('--'))
    scriptArgs.push(args[i]);
  else scriptArgs.push(args[i], args[++i]);
}
const scripts = [];
for (const pkg of readdirSync(join(root, 'packages')).sort()) {
  const dir = join(root, 'packages', pkg, 'bench');
  if (!existsSync(dir)) continue;
  for (const file of readdirSync(dir).sort()) {
    if (file.endsWith('.bench.ts')) scripts.push(join('packages', pkg, 'bench', file));
  }
}
const selected = scripts.filter((s) => filters.length === 0 || filters.some((f) => s.includes(f)));
if (selected.length === 0) {
  console.error(`no benchmark matches ${filters.join(', ')}; have:\n  ${scripts.join('\n  ')}`);
  process.exit(1);
}
for (const script of selected) {
  console.log(`\n## ${script}`);
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--expose-gc', script, ...scriptArgs],
    {
      cwd: root,
      // @weir/* resolves to the packages' sources, so benchmarks need no build.
      env: { ...process.env, TSX_TSCONFIG_PATH: join(root, 'tsconfig.sources.json') },
      stdio: 'inherit',
    },
  );
  if (result.status !== 0) {
    console.error(`benchmark ${script} failed with status ${result.status}`);
    process.exit(1);
  }
}
