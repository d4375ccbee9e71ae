#!/usr/bin/env node
// The `weir` executable.

import { runCli } from '../src/program.js';

// `weir consume … | head` closes the pipe early: end quietly, as Unix tools do on SIGPIPE.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  stdin: process.stdin,
});
