// CRC-32C throughput: the native (SIMD) implementation we use, next to a plain table-driven
// JavaScript one for scale. Also RecordBatchBuilder and RecordBatch.validate throughput.
//   pnpm bench crc32c
import { RecordBatch, RecordBatchBuilder, crc32c } from '../src/index.js';

const TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32cTable(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Runs `fn` over `bytes` repeatedly for about `seconds`, returns GB/s. */
function measure(bytesPerCall: number, seconds: number, fn: () => void): number {
  for (let i = 0; i < 3; i++) fn(); // warm up
  const start = process.hrtime.bigint();
  let calls = 0;
  while (process.hrtime.bigint() - start < BigInt(seconds * 1e9)) {
    fn();
    calls++;
  }
  const elapsedSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  return (calls * bytesPerCall) / elapsedSeconds / 1e9;
}

const MiB = 1024 * 1024;
const data = Buffer.alloc(MiB, 0xab);
if (crc32cTable(data) !== crc32c(data)) throw new Error('table and native CRC-32C disagree');

const results: Record<string, string> = {};
results['crc32c native, 1 MiB buffers'] = `${measure(MiB, 2, () => crc32c(data)).toFixed(2)} GB/s`;
results['crc32c native, 64 KiB buffers'] =
  `${measure(64 * 1024, 2, () => crc32c(data.subarray(0, 64 * 1024))).toFixed(2)} GB/s`;
results['crc32c JS table (reference), 1 MiB'] =
  `${measure(MiB, 2, () => crc32cTable(data)).toFixed(3)} GB/s`;

const value = Buffer.alloc(1024, 0x61);
const build = () => {
  const builder = new RecordBatchBuilder();
  for (let i = 0; i < 64; i++) builder.append({ value, timestamp: 1_700_000_000_000 });
  return builder.build();
};
const batch = build();
results['RecordBatchBuilder, 64 x 1 KiB records'] =
  `${(measure(batch.length, 2, build) * 1000).toFixed(0)} MB/s`;
results['RecordBatch.validate (CRC + framing), 64 KiB batch'] =
  `${measure(batch.length, 2, () => RecordBatch.validated(batch)).toFixed(2)} GB/s`;

for (const [name, figure] of Object.entries(results)) console.log(`${name.padEnd(52)} ${figure}`);
