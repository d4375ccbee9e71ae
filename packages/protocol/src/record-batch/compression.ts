// Compression of a batch's records section, selected by attribute bits 0-2 (Kafka's codec ids).
// gzip uses node's zlib; snappy, lz4 and zstd are decoded from the attributes but not yet
// implemented, and say so with UNSUPPORTED_COMPRESSION_TYPE.
import { gunzipSync, gzipSync } from 'node:zlib';
import { ErrorCode, WeirError } from '../errors.js';
import { corrupt } from './varint.js';

export const COMPRESSION_TYPES = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const;
export type CompressionType = (typeof COMPRESSION_TYPES)[number];

export const COMPRESSION_CODEC_MASK = 0x07;

export function compressionFromAttributes(attributes: number): CompressionType {
  const codec = attributes & COMPRESSION_CODEC_MASK;
  const type = COMPRESSION_TYPES[codec];
  if (type === undefined) throw corrupt(`record batch has unknown compression codec id ${codec}`);
  return type;
}

export function compressionCodecId(type: CompressionType): number {
  return COMPRESSION_TYPES.indexOf(type);
}

function unsupported(type: CompressionType): WeirError {
  return new WeirError(
    ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
    `compression ${type} is not supported yet; use none or gzip`,
  );
}

export function compress(type: CompressionType, data: Buffer): Buffer {
  switch (type) {
    case 'none':
      return data;
    case 'gzip':
      return gzipSync(data);
    default:
      throw unsupported(type);
  }
}

export function decompress(type: CompressionType, data: Buffer, maxOutputBytes: number): Buffer {
  switch (type) {
    case 'none':
      return data;
    case 'gzip':
      try {
        return gunzipSync(data, { maxOutputLength: maxOutputBytes });
      } catch (error) {
        throw corrupt(`gzip records section does not decompress: ${(error as Error).message}`);
      }
    default:
      throw unsupported(type);
  }
}
