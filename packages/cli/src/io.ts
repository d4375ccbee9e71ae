/**
 * Where the weir command reads and writes: the process's streams and environment in the
 * executable, buffers in tests.
 */
export interface CliIo {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: { write(chunk: string): unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * What `weir produce` reads; process.stdin when absent. `isTTY` tells a terminal (no progress
   * lines then) from a pipe or file.
   */
  readonly stdin?: NodeJS.ReadableStream & { readonly isTTY?: boolean };
}
