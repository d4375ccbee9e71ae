#!/usr/bin/env node
// The `weir` executable.

import { runCli } from '../src/program.js';

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
