#!/usr/bin/env node
// Generates the TypeScript code for Weir's protobuf messages and gRPC services from proto/.
//
//   node scripts/gen-proto.mjs          lint proto/, format it, regenerate the output in place
//   node scripts/gen-proto.mjs --check  lint, check formatting, and fail if the committed
//                                       output differs from what proto/ generates (CI)
//
// Both modes generate into a temporary folder with the same `buf generate` call, so what the
// check compares against is exactly what a regeneration would write. The output folder is
// read from buf.gen.yaml and replaced as a whole, so code for a deleted .proto file goes too.
// How and why: docs/protocol-codegen.md.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const template = 'buf.gen.yaml';
const buf = path.join(root, 'node_modules', '.bin', 'buf');
const fixCommand = 'pnpm gen';

function main(argv) {
  const args = argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    console.log('usage: node scripts/gen-proto.mjs [--check]');
    return 0;
  }
  const unknown = args.filter((arg) => arg !== '--check');
  if (unknown.length > 0) {
    console.error(`gen-proto: unknown argument ${unknown.join(' ')}; usage: gen-proto [--check]`);
    return 2;
  }
  const check = args.includes('--check');

  if (!fs.existsSync(buf)) {
    console.error(`gen-proto: ${buf} is missing; run \`pnpm install\` first.`);
    return 1;
  }
  if (!runBuf(['lint'])) {
    console.error('gen-proto: `buf lint` failed; fix the .proto files named above.');
    return 1;
  }
  if (check) {
    if (!runBuf(['format', '--diff', '--exit-code'])) {
      console.error(
        `gen-proto: .proto files are not formatted (diff above); run \`${fixCommand}\`.`,
      );
      return 1;
    }
  } else if (!runBuf(['format', '--write'])) {
    console.error('gen-proto: `buf format --write` failed.');
    return 1;
  }

  const outDir = readOutDir();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-gen-proto-'));
  try {
    if (!runBuf(['generate', '--template', template, '--output', tmp])) {
      console.error('gen-proto: `buf generate` failed.');
      return 1;
    }
    const generated = path.join(tmp, outDir);
    const committed = path.join(root, outDir);
    const differences = compareTrees(generated, committed);
    if (differences.length === 0) {
      console.log(`gen-proto: ${outDir}/ is up to date.`);
      return 0;
    }
    if (check) {
      console.error(`gen-proto: ${outDir}/ is stale: it differs from what proto/ generates.`);
      console.error('  (missing: generated but absent; extra: present but no longer generated)');
      for (const { kind, file } of differences)
        console.error(`  ${kind.padEnd(8)} ${outDir}/${file}`);
      console.error(`Run \`${fixCommand}\` and commit the result. Never edit generated files.`);
      return 1;
    }
    fs.rmSync(committed, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(committed), { recursive: true });
    fs.cpSync(generated, committed, { recursive: true });
    for (const { kind, file } of differences) console.log(`  ${kind.padEnd(8)} ${outDir}/${file}`);
    console.log(`gen-proto: regenerated ${outDir}/ (${differences.length} file(s) changed).`);
    return 0;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Runs buf from the repository root with its output shown; true when it succeeded. */
function runBuf(args) {
  const result = spawnSync(buf, args, { cwd: root, stdio: 'inherit' });
  if (result.error) {
    console.error(`gen-proto: could not run buf ${args[0]}: ${result.error.message}`);
    return false;
  }
  return result.status === 0;
}

/** The one `out:` folder in buf.gen.yaml, relative to the repository root. */
function readOutDir() {
  const text = fs.readFileSync(path.join(root, template), 'utf8');
  const outs = [...text.matchAll(/^\s*out:\s*(\S+)\s*$/gm)].map((match) => match[1]);
  if (outs.length !== 1) {
    throw new Error(`${template} must have exactly one plugin \`out:\`; found ${outs.length}`);
  }
  const outDir = path.posix.normalize(outs[0]).replace(/\/$/, '');
  if (path.isAbsolute(outDir) || outDir.startsWith('..') || outDir === '.') {
    throw new Error(`${template}: out must be a folder inside the repository, not ${outs[0]}`);
  }
  return outDir;
}

/** Files that differ between the generated and the committed tree, sorted by path. */
function compareTrees(generated, committed) {
  const generatedFiles = listFiles(generated);
  const committedFiles = listFiles(committed);
  const differences = [];
  for (const file of generatedFiles) {
    if (!committedFiles.has(file)) {
      differences.push({ kind: 'missing', file });
    } else if (!sameContent(path.join(generated, file), path.join(committed, file))) {
      differences.push({ kind: 'changed', file });
    }
  }
  for (const file of committedFiles) {
    if (!generatedFiles.has(file)) differences.push({ kind: 'extra', file });
  }
  return differences.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/** Every file below `dir` as a posix path relative to it; empty when `dir` does not exist. */
function listFiles(dir, prefix = '', files = new Set()) {
  if (!fs.existsSync(dir)) return files;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = prefix + entry.name;
    if (entry.isDirectory()) listFiles(path.join(dir, entry.name), `${file}/`, files);
    else files.add(file);
  }
  return files;
}

function sameContent(a, b) {
  return fs.readFileSync(a).equals(fs.readFileSync(b));
}

process.exitCode = main(process.argv);
