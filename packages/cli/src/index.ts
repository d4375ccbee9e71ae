export { type CliIo, buildProgram, runCli } from './program.js';
export { formatTable } from './output.js';
