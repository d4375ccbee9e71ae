// The file I/O a segment needs, behind a small interface so tests can inject faults (a short
// write followed by ENOSPC, say) into the real code path.

import { type FileHandle, open } from 'node:fs/promises';

export interface SegmentFile {
  /** Appends all buffers at the end of the file; may throw after writing only a prefix. */
  append(buffers: readonly Buffer[]): Promise<void>;
  read(target: Buffer, length: number, position: number): Promise<number>;
  truncate(sizeBytes: number): Promise<void>;
  sync(): Promise<void>;
  sizeBytes(): Promise<number>;
  close(): Promise<void>;
}

export type SegmentFileOpener = (path: string) => Promise<SegmentFile>;

/** Linux limits one writev to IOV_MAX (1024) buffers. */
const MAX_BUFFERS_PER_WRITE = 1024;

class NodeSegmentFile implements SegmentFile {
  constructor(private readonly handle: FileHandle) {}

  async append(buffers: readonly Buffer[]): Promise<void> {
    let pending = buffers.filter((b) => b.length > 0);
    while (pending.length > 0) {
      const chunk = pending.slice(0, MAX_BUFFERS_PER_WRITE);
      let { bytesWritten } = await this.handle.writev(chunk);
      // A short write: drop what was written and continue with the rest.
      let consumed = 0;
      while (consumed < chunk.length && bytesWritten >= chunk[consumed]!.length) {
        bytesWritten -= chunk[consumed]!.length;
        consumed++;
      }
      const rest = pending.slice(consumed);
      if (bytesWritten > 0) rest[0] = rest[0]!.subarray(bytesWritten);
      pending = rest;
    }
  }

  async read(target: Buffer, length: number, position: number): Promise<number> {
    let total = 0;
    while (total < length) {
      const { bytesRead } = await this.handle.read(target, total, length - total, position + total);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
    return total;
  }

  truncate(sizeBytes: number): Promise<void> {
    return this.handle.truncate(sizeBytes);
  }

  sync(): Promise<void> {
    return this.handle.datasync();
  }

  async sizeBytes(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Opens (creating if needed) a segment file for reading and appending (O_APPEND). */
export const openSegmentFile: SegmentFileOpener = async (path) =>
  new NodeSegmentFile(await open(path, 'a+'));
