// Cheap non-cryptographic hashes for the checker (log matching by chained hashes, state
// machine fingerprints) and for trace fingerprints. 32-bit murmur3-style mixing; a collision
// can only hide a violation, never invent one.

export function mix(hash: number, value: number): number {
  let k = Math.imul(value | 0, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  let h = hash ^ k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

export function finish(hash: number): number {
  let h = hash ^ (hash >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export function hashBytes(bytes: Uint8Array): number {
  let h = mix(0x5eed, bytes.length);
  for (let i = 0; i < bytes.length; i++) h = mix(h, bytes[i]!);
  return finish(h);
}

/** The hash of a log entry chained to the hash of the entry before it (Raft §5.3). */
export function chainHash(previous: number, term: number, index: number, dataHash: number): number {
  return finish(mix(mix(mix(mix(0x10c, previous), term), index), dataHash));
}
