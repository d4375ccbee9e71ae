// CRC-32C (Castagnoli), the checksum of Kafka's RecordBatch v2. @node-rs/crc32 computes it with
// the CPU's CRC32 instructions (SSE4.2 / ARMv8), several GB/s; see docs/benchmarks.md.
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC-32C of `data` as an unsigned 32-bit number; `previous` continues an earlier checksum. */
export function crc32c(data: Uint8Array, previous = 0): number {
  return nativeCrc32c(data, previous) >>> 0;
}
