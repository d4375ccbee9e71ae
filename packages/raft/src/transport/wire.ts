// Conversion between the core's messages (core/types.ts) and their protobuf form
// (proto/weir/raft/raft.proto), exact in both directions: fromProto(toProto(m)) equals m.
//
// Incoming messages come from the network and are checked as they are converted: a term or
// index above 2^53 − 1 (the core counts in numbers), a negative node id, an unknown entry type,
// non-consecutive entries, a missing oneof or a snapshot stream that does not add up is refused
// with WeirError(INVALID_REQUEST) naming the field, before the core sees anything. A request of
// another cluster is refused with INCONSISTENT_CLUSTER_ID. Outgoing messages come from our own
// core, so a value the wire cannot carry there is a bug: ILLEGAL_STATE.

import { ErrorCode, WeirError, assert, crc32c, proto } from '@weir/protocol';
import type {
  AppendRequest,
  Entry,
  Message,
  NodeId,
  SnapshotMetadata,
  SnapshotRequest,
} from '../core/types.js';

export type ProtoRaftMessage = proto.weir.raft.RaftMessage;
export type ProtoEntry = proto.weir.raft.Entry;
export type ProtoSnapshotMetadata = proto.weir.raft.SnapshotMetadata;
export type ProtoInstallSnapshotRequest = proto.weir.raft.InstallSnapshotRequest;
export type ProtoSendRequest = proto.weir.raft.SendRequest;

/** Every message but the snapshot: what a RaftMessage (and so a SendRequest) can carry. */
export type BatchableMessage = Exclude<Message, SnapshotRequest>;

const { EntryType } = proto.weir.raft;

/** The default size of one InstallSnapshot chunk: well under gRPC's 4 MiB message limit. */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
const MAX_INT32 = 2 ** 31 - 1;

// ---------------------------------------------------------------------------------------------
// Messages

/**
 * The protobuf form of a message. `clusterId` goes into requests (responses carry none); leave
 * it empty for messages batched in a SendRequest, whose own cluster_id applies.
 */
export function messageToProto(message: BatchableMessage, clusterId = ''): ProtoRaftMessage {
  const envelope = {
    from: nodeOut(message.from),
    to: nodeOut(message.to),
    term: u64(message.term),
  };
  switch (message.type) {
    case 'vote':
    case 'preVote': {
      const value = {
        clusterId,
        ...envelope,
        lastLogIndex: u64(message.lastLogIndex),
        lastLogTerm: u64(message.lastLogTerm),
        transfer: message.transfer,
      };
      return message.type === 'vote'
        ? { kind: { $case: 'voteRequest', value } }
        : { kind: { $case: 'preVoteRequest', value } };
    }
    case 'voteResponse':
      return { kind: { $case: 'voteResponse', value: { ...envelope, granted: message.granted } } };
    case 'preVoteResponse':
      return {
        kind: { $case: 'preVoteResponse', value: { ...envelope, granted: message.granted } },
      };
    case 'append':
      return {
        kind: {
          $case: 'appendEntriesRequest',
          value: {
            clusterId,
            ...envelope,
            prevLogIndex: u64(message.prevLogIndex),
            prevLogTerm: u64(message.prevLogTerm),
            entries: message.entries.map(entryToProto),
            commit: u64(message.commit),
          },
        },
      };
    case 'appendResponse':
      return {
        kind: {
          $case: 'appendEntriesResponse',
          value: {
            ...envelope,
            success: message.success,
            index: u64(message.index),
            hintIndex: u64(message.hintIndex),
            hintTerm: u64(message.hintTerm),
          },
        },
      };
    case 'heartbeat':
      return {
        kind: {
          $case: 'heartbeatRequest',
          value: {
            clusterId,
            ...envelope,
            commit: u64(message.commit),
            context: u64(message.context),
          },
        },
      };
    case 'heartbeatResponse':
      return {
        kind: {
          $case: 'heartbeatResponse',
          value: { ...envelope, context: u64(message.context) },
        },
      };
    case 'timeoutNow':
      return { kind: { $case: 'timeoutNowRequest', value: { clusterId, ...envelope } } };
  }
}

/**
 * The core message a RaftMessage holds. With `clusterId`, a request naming another cluster is
 * refused (INCONSISTENT_CLUSTER_ID); an empty cluster_id is accepted, as inside a SendRequest
 * whose own cluster_id the caller checked.
 */
export function messageFromProto(
  raftMessage: ProtoRaftMessage,
  clusterId?: string,
): BatchableMessage {
  const kind = raftMessage.kind;
  if (kind === undefined) throw invalid('a RaftMessage carries no message (unknown or unset kind)');
  const { value } = kind;
  const field = (name: string): string => `${kind.$case}.${name}`;
  const envelope = {
    from: nodeIn(value.from, field('from')),
    to: nodeIn(value.to, field('to')),
    term: u64In(value.term, field('term')),
  };
  if ('clusterId' in value && clusterId !== undefined && value.clusterId !== '') {
    checkClusterId(clusterId, value.clusterId, kind.$case);
  }
  switch (kind.$case) {
    case 'voteRequest':
    case 'preVoteRequest': {
      const request = kind.value;
      return {
        type: kind.$case === 'voteRequest' ? 'vote' : 'preVote',
        ...envelope,
        lastLogIndex: u64In(request.lastLogIndex, field('lastLogIndex')),
        lastLogTerm: u64In(request.lastLogTerm, field('lastLogTerm')),
        transfer: request.transfer,
      };
    }
    case 'voteResponse':
    case 'preVoteResponse':
      return {
        type: kind.$case,
        ...envelope,
        granted: kind.value.granted,
      };
    case 'appendEntriesRequest':
      return appendFromProto(kind.value, envelope);
    case 'appendEntriesResponse': {
      const response = kind.value;
      return {
        type: 'appendResponse',
        ...envelope,
        success: response.success,
        index: u64In(response.index, field('index')),
        hintIndex: u64In(response.hintIndex, field('hintIndex')),
        hintTerm: u64In(response.hintTerm, field('hintTerm')),
      };
    }
    case 'heartbeatRequest':
      return {
        type: 'heartbeat',
        ...envelope,
        commit: u64In(kind.value.commit, field('commit')),
        context: u64In(kind.value.context, field('context')),
      };
    case 'heartbeatResponse':
      return {
        type: 'heartbeatResponse',
        ...envelope,
        context: u64In(kind.value.context, field('context')),
      };
    case 'timeoutNowRequest':
      return { type: 'timeoutNow', ...envelope };
  }
}

interface EnvelopeFields {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

function appendFromProto(
  request: proto.weir.raft.AppendEntriesRequest,
  envelope: EnvelopeFields,
): AppendRequest {
  const prevLogIndex = u64In(request.prevLogIndex, 'appendEntriesRequest.prevLogIndex');
  const entries = request.entries.map((entry, position) => {
    const converted = entryFromProto(entry, `appendEntriesRequest.entries[${position}]`);
    // Raft §5.3: the entries follow prevLogIndex without a gap; anything else would be stored
    // at the wrong place.
    if (converted.index !== prevLogIndex + 1 + position) {
      throw invalid(
        `appendEntriesRequest.entries[${position}] has index ${converted.index}, expected ${prevLogIndex + 1 + position} (entries must follow prevLogIndex ${prevLogIndex})`,
      );
    }
    return converted;
  });
  return {
    type: 'append',
    ...envelope,
    prevLogIndex,
    prevLogTerm: u64In(request.prevLogTerm, 'appendEntriesRequest.prevLogTerm'),
    entries,
    commit: u64In(request.commit, 'appendEntriesRequest.commit'),
  };
}

// ---------------------------------------------------------------------------------------------
// Batches (RaftService.Send)

/** One SendRequest with every message for one peer, in the order the core emitted them. */
export function sendRequestToProto(
  clusterId: string,
  from: NodeId,
  to: NodeId,
  messages: readonly BatchableMessage[],
): ProtoSendRequest {
  return {
    clusterId,
    from: nodeOut(from),
    to: nodeOut(to),
    messages: messages.map((message) => {
      assert(
        message.from === from && message.to === to,
        () =>
          `a ${message.type} message from ${message.from} to ${message.to} in a batch from ${from} to ${to}`,
      );
      return messageToProto(message);
    }),
  };
}

/**
 * The messages of a SendRequest received by node `nodeId` of cluster `clusterId`: refused whole
 * when the batch is from another cluster or not addressed to this node, or when any message in
 * it is malformed or names another sender or receiver than the batch.
 */
export function sendRequestFromProto(
  request: ProtoSendRequest,
  receiver: { readonly clusterId: string; readonly nodeId: NodeId },
): BatchableMessage[] {
  checkClusterId(receiver.clusterId, request.clusterId, 'SendRequest');
  if (request.to !== receiver.nodeId) {
    throw invalid(`a SendRequest for node ${request.to} reached node ${receiver.nodeId}`);
  }
  return request.messages.map((raftMessage, position) => {
    const message = messageFromProto(raftMessage, receiver.clusterId);
    if (message.from !== request.from || message.to !== request.to) {
      throw invalid(
        `SendRequest.messages[${position}] is from ${message.from} to ${message.to}, but the batch is from ${request.from} to ${request.to}`,
      );
    }
    return message;
  });
}

/** Refuses a request of another cluster: a node must never vote or replicate across clusters. */
export function checkClusterId(expected: string, received: string, what: string): void {
  if (received !== expected) {
    throw new WeirError(
      ErrorCode.INCONSISTENT_CLUSTER_ID,
      `${what} is for cluster ${JSON.stringify(received)}, but this node belongs to cluster ${JSON.stringify(expected)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Entries and snapshot metadata

export function entryToProto(entry: Entry): ProtoEntry {
  return {
    index: u64(entry.index),
    term: u64(entry.term),
    type: entry.type === 'noop' ? EntryType.ENTRY_TYPE_NOOP : EntryType.ENTRY_TYPE_NORMAL,
    data: bufferView(entry.data),
  };
}

export function entryFromProto(entry: ProtoEntry, field = 'entry'): Entry {
  const index = u64In(entry.index, `${field}.index`);
  if (index < 1) throw invalid(`${field}.index is 0; log indexes start at 1`);
  let type: Entry['type'];
  switch (entry.type) {
    case EntryType.ENTRY_TYPE_NORMAL:
      type = 'normal';
      break;
    case EntryType.ENTRY_TYPE_NOOP:
      type = 'noop';
      break;
    default:
      throw invalid(`${field}.type ${entry.type} is not a known entry type`);
  }
  return { index, term: u64In(entry.term, `${field}.term`), type, data: plainView(entry.data) };
}

export function snapshotMetadataToProto(metadata: SnapshotMetadata): ProtoSnapshotMetadata {
  return {
    index: u64(metadata.index),
    term: u64(metadata.term),
    voters: metadata.voters.map(nodeOut),
  };
}

export function snapshotMetadataFromProto(
  metadata: ProtoSnapshotMetadata | undefined,
  field = 'metadata',
): SnapshotMetadata {
  if (metadata === undefined) throw invalid(`${field} is missing`);
  return {
    index: u64In(metadata.index, `${field}.index`),
    term: u64In(metadata.term, `${field}.term`),
    voters: metadata.voters.map((voter, i) => nodeIn(voter, `${field}.voters[${i}]`)),
  };
}

// ---------------------------------------------------------------------------------------------
// Snapshots (RaftService.InstallSnapshot): a header, then the data in chunks

/**
 * The InstallSnapshot stream for a snapshot message: a header, then chunks of at most
 * `chunkBytes` (views of the snapshot's data, not copies).
 */
export function installSnapshotRequests(
  message: SnapshotRequest,
  options: { readonly clusterId: string; readonly chunkBytes?: number },
): ProtoInstallSnapshotRequest[] {
  const { clusterId, chunkBytes = SNAPSHOT_CHUNK_BYTES } = options;
  assert(Number.isInteger(chunkBytes) && chunkBytes > 0, () => `chunkBytes ${chunkBytes}`);
  const { data, metadata } = message.snapshot;
  const parts: ProtoInstallSnapshotRequest[] = [
    {
      part: {
        $case: 'header',
        value: {
          clusterId,
          from: nodeOut(message.from),
          to: nodeOut(message.to),
          term: u64(message.term),
          metadata: snapshotMetadataToProto(metadata),
          dataBytes: BigInt(data.length),
          dataCrc32c: crc32c(data),
        },
      },
    },
  ];
  for (let offset = 0; offset < data.length; offset += chunkBytes) {
    const chunk = data.subarray(offset, offset + chunkBytes);
    parts.push({ part: { $case: 'chunk', value: bufferView(chunk) } });
  }
  return parts;
}

/**
 * Rebuilds a snapshot message from an InstallSnapshot stream, part by part, refusing a stream
 * that is out of order, longer or shorter than its header says, larger than
 * `maxSnapshotBytes`, or whose data fails its CRC-32C. Memory is bounded by maxSnapshotBytes.
 */
export class InstallSnapshotAssembler {
  private header: proto.weir.raft.InstallSnapshotHeader | undefined;
  private data: Uint8Array | undefined;
  private received = 0;

  constructor(
    private readonly options: { readonly clusterId: string; readonly maxSnapshotBytes: number },
  ) {}

  add(request: ProtoInstallSnapshotRequest): void {
    const part = request.part;
    if (part === undefined) throw invalid('an InstallSnapshotRequest carries no part');
    if (part.$case === 'header') {
      if (this.header !== undefined) throw invalid('a second header in an InstallSnapshot stream');
      const header = part.value;
      checkClusterId(this.options.clusterId, header.clusterId, 'InstallSnapshot');
      const dataBytes = u64In(header.dataBytes, 'header.dataBytes');
      if (dataBytes > this.options.maxSnapshotBytes) {
        throw invalid(
          `a snapshot of ${dataBytes} bytes is larger than the ${this.options.maxSnapshotBytes} bytes this node accepts`,
        );
      }
      this.header = header;
      this.data = new Uint8Array(dataBytes);
      return;
    }
    if (this.data === undefined) throw invalid('a snapshot chunk arrived before the header');
    const chunk = part.value;
    if (this.received + chunk.length > this.data.length) {
      throw invalid(
        `the snapshot chunks add up to more than the header's ${this.data.length} bytes`,
      );
    }
    this.data.set(chunk, this.received);
    this.received += chunk.length;
  }

  /** The snapshot message, once the stream has ended. */
  finish(): SnapshotRequest {
    const header = this.header;
    const data = this.data;
    if (header === undefined || data === undefined) {
      throw invalid('the InstallSnapshot stream ended without a header');
    }
    if (this.received !== data.length) {
      throw invalid(
        `the InstallSnapshot stream ended after ${this.received} of ${data.length} bytes`,
      );
    }
    if (crc32c(data) !== header.dataCrc32c) {
      throw new WeirError(
        ErrorCode.CORRUPT_MESSAGE,
        'the snapshot data does not match the CRC-32C in its InstallSnapshot header',
      );
    }
    return {
      type: 'snapshot',
      from: nodeIn(header.from, 'header.from'),
      to: nodeIn(header.to, 'header.to'),
      term: u64In(header.term, 'header.term'),
      snapshot: { metadata: snapshotMetadataFromProto(header.metadata, 'header.metadata'), data },
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Scalars

/** A term or index on its way out: a safe non-negative integer, or our core has a bug. */
function u64(value: number): bigint {
  assert(
    Number.isSafeInteger(value) && value >= 0,
    () => `${value} cannot be sent as a uint64 term or index`,
  );
  return BigInt(value);
}

/** A uint64 from the wire as a number; INVALID_REQUEST above 2^53 − 1. */
export function u64In(value: bigint, field: string): number {
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw invalid(`${field} = ${value} is outside [0, 2^53 − 1], the range of terms and indexes`);
  }
  return Number(value);
}

function nodeOut(id: NodeId): number {
  assert(
    Number.isInteger(id) && id >= 0 && id <= MAX_INT32,
    () => `node id ${id} is not an int32 ≥ 0`,
  );
  return id;
}

function nodeIn(id: number, field: string): NodeId {
  if (!Number.isInteger(id) || id < 0 || id > MAX_INT32) {
    throw invalid(`${field} = ${id} is not a node id (an int32 ≥ 0)`);
  }
  return id;
}

function bufferView(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** A plain Uint8Array over the same bytes (the generated code decodes bytes as Buffers). */
function plainView(data: Uint8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function invalid(problem: string): WeirError {
  return new WeirError(ErrorCode.INVALID_REQUEST, `invalid Raft message: ${problem}`);
}
