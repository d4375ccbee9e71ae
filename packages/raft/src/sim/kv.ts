// The replicated state machine the simulated clients use: registers by small integer key with
// put, get and compare-and-set, and a session per client that applies each request id at most
// once (Raft §8 and the thesis §6.3: a client retries with the same serial number, and the
// state machine answers a duplicate with the answer it gave the first time).

import type { Entry, Snapshot } from '../core/types.js';
import { finish, mix } from './hash.js';

export type Command =
  | {
      readonly kind: 'put';
      readonly client: number;
      readonly seq: number;
      readonly key: number;
      readonly value: number;
    }
  | { readonly kind: 'get'; readonly client: number; readonly seq: number; readonly key: number }
  | {
      readonly kind: 'cas';
      readonly client: number;
      readonly seq: number;
      readonly key: number;
      readonly expected: number;
      readonly value: number;
    }
  /** The liveness probe: commits like anything else, changes nothing. */
  | { readonly kind: 'probe'; readonly client: number; readonly seq: number };

/** put → null, get → the value (0 when never written), cas → whether it swapped. */
export type Output = number | boolean | null;

export interface Applied {
  readonly client: number;
  readonly seq: number;
  readonly output: Output;
}

const KINDS = ['put', 'get', 'cas', 'probe'] as const;
const COMMAND_BYTES = 20;

export function encodeCommand(command: Command): Uint8Array {
  const bytes = new Uint8Array(COMMAND_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, KINDS.indexOf(command.kind));
  view.setUint16(2, command.client);
  view.setUint32(4, command.seq);
  if (command.kind !== 'probe') view.setUint8(1, command.key);
  if (command.kind === 'put' || command.kind === 'cas') view.setInt32(8, command.value);
  if (command.kind === 'cas') view.setInt32(12, command.expected);
  return bytes;
}

export function decodeCommand(bytes: Uint8Array): Command {
  if (bytes.length !== COMMAND_BYTES)
    throw new Error(`a command is ${COMMAND_BYTES} bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kind = KINDS[view.getUint8(0)];
  const client = view.getUint16(2);
  const seq = view.getUint32(4);
  const key = view.getUint8(1);
  switch (kind) {
    case 'put':
      return { kind, client, seq, key, value: view.getInt32(8) };
    case 'get':
      return { kind, client, seq, key };
    case 'cas':
      return { kind, client, seq, key, value: view.getInt32(8), expected: view.getInt32(12) };
    case 'probe':
      return { kind, client, seq };
    default:
      throw new Error(`unknown command kind ${view.getUint8(0)}`);
  }
}

interface Session {
  readonly seq: number;
  readonly output: Output;
}

interface SnapshotImage {
  readonly values: [number, number][];
  readonly sessions: [number, number, Output][];
}

export class KvStateMachine {
  appliedIndex = 0;
  appliedTerm = 0;
  private readonly values = new Map<number, number>();
  private readonly sessions = new Map<number, Session>();
  /** XOR of one hash per key and per session: updated in O(1), equal for equal states. */
  private stateHash = 0;

  get fingerprint(): number {
    return this.stateHash >>> 0;
  }

  read(key: number): number {
    return this.values.get(key) ?? 0;
  }

  /** Applies a committed entry; the client's answer, or undefined for a no-op entry. */
  apply(entry: Entry): Applied | undefined {
    this.appliedIndex = entry.index;
    this.appliedTerm = entry.term;
    if (entry.type === 'noop') return undefined;
    const command = decodeCommand(entry.data);
    const session = this.sessions.get(command.client);
    if (session !== undefined && command.seq <= session.seq) {
      // A retry of a request that already took effect: answer it again, change nothing.
      return command.seq === session.seq
        ? { client: command.client, seq: command.seq, output: session.output }
        : undefined;
    }
    const output = this.execute(command);
    this.setSession(command.client, { seq: command.seq, output });
    return { client: command.client, seq: command.seq, output };
  }

  private execute(command: Command): Output {
    switch (command.kind) {
      case 'put':
        this.setValue(command.key, command.value);
        return null;
      case 'get':
        return this.read(command.key);
      case 'cas': {
        const swapped = this.read(command.key) === command.expected;
        if (swapped) this.setValue(command.key, command.value);
        return swapped;
      }
      case 'probe':
        return null;
    }
  }

  private setValue(key: number, value: number): void {
    const old = this.values.get(key);
    if (old !== undefined) this.stateHash ^= valueHash(key, old);
    this.values.set(key, value);
    this.stateHash ^= valueHash(key, value);
  }

  private setSession(client: number, session: Session): void {
    const old = this.sessions.get(client);
    if (old !== undefined) this.stateHash ^= sessionHash(client, old.seq);
    this.sessions.set(client, session);
    this.stateHash ^= sessionHash(client, session.seq);
  }

  /** The state as snapshot data (§7): values and sessions, so retries stay deduplicated. */
  snapshotData(): Uint8Array {
    const image: SnapshotImage = {
      values: [...this.values],
      sessions: [...this.sessions].map(([client, s]) => [client, s.seq, s.output]),
    };
    return new TextEncoder().encode(JSON.stringify(image));
  }

  static fromSnapshot(snapshot: Snapshot | undefined): KvStateMachine {
    const machine = new KvStateMachine();
    if (snapshot === undefined) return machine;
    const image = JSON.parse(new TextDecoder().decode(snapshot.data)) as SnapshotImage;
    for (const [key, value] of image.values) machine.setValue(key, value);
    for (const [client, seq, output] of image.sessions) machine.setSession(client, { seq, output });
    machine.appliedIndex = snapshot.metadata.index;
    machine.appliedTerm = snapshot.metadata.term;
    return machine;
  }
}

function valueHash(key: number, value: number): number {
  return finish(mix(mix(0x7a1, key), value));
}

function sessionHash(client: number, seq: number): number {
  return finish(mix(mix(0x5e5, client), seq));
}
