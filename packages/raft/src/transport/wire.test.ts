// The core's messages survive the wire exactly, through the generated protobuf codec and back,
// and what arrives from the network is checked before the core sees it.

import { ErrorCode, isWeirError, proto } from '@weir/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Entry, Message, SnapshotRequest } from '../core/types.js';
import {
  type BatchableMessage,
  InstallSnapshotAssembler,
  type ProtoInstallSnapshotRequest,
  type ProtoRaftMessage,
  installSnapshotRequests,
  messageFromProto,
  messageToProto,
  sendRequestFromProto,
  sendRequestToProto,
} from './wire.js';

const { RaftMessage, SendRequest, InstallSnapshotRequest, EntryType } = proto.weir.raft;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const nodeId = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const u64 = fc.oneof(
  fc.integer({ min: 0, max: 1000 }),
  fc.integer({ min: 0, max: MAX_SAFE }),
  fc.constant(MAX_SAFE),
);
const data = fc.uint8Array({ maxLength: 48 }).map((bytes) => new Uint8Array(bytes));

// Messages are built in .map() so they are plain objects, as the core makes them (fast-check's
// records have a null prototype, which toStrictEqual would tell apart).
const envelope = fc.tuple(nodeId, nodeId, u64).map(([from, to, term]) => ({ from, to, term }));

function entriesAfter(prevLogIndex: number): fc.Arbitrary<Entry[]> {
  return fc
    .array(fc.tuple(u64, fc.constantFrom('normal' as const, 'noop' as const), data), {
      maxLength: 5,
    })
    .map((items) =>
      items.map(([term, type, bytes], i) => ({
        index: prevLogIndex + 1 + i,
        term,
        type,
        data: bytes,
      })),
    );
}

const voteRequest = fc
  .tuple(envelope, fc.constantFrom('vote' as const, 'preVote' as const), u64, u64, fc.boolean())
  .map(([env, type, lastLogIndex, lastLogTerm, transfer]) => ({
    type,
    ...env,
    lastLogIndex,
    lastLogTerm,
    transfer,
  }));
const voteResponse = fc
  .tuple(
    envelope,
    fc.constantFrom('voteResponse' as const, 'preVoteResponse' as const),
    fc.boolean(),
  )
  .map(([env, type, granted]) => ({ type, ...env, granted }));
const append = fc
  .tuple(envelope, fc.integer({ min: 0, max: MAX_SAFE - 5 }), u64, u64)
  .chain(([env, prevLogIndex, prevLogTerm, commit]) =>
    entriesAfter(prevLogIndex).map((entries) => ({
      type: 'append' as const,
      ...env,
      prevLogIndex,
      prevLogTerm,
      entries,
      commit,
    })),
  );
const appendResponse = fc
  .tuple(envelope, fc.boolean(), u64, u64, u64)
  .map(([env, success, index, hintIndex, hintTerm]) => ({
    type: 'appendResponse' as const,
    ...env,
    success,
    index,
    hintIndex,
    hintTerm,
  }));
const heartbeat = fc
  .tuple(envelope, u64, u64)
  .map(([env, commit, context]) => ({ type: 'heartbeat' as const, ...env, commit, context }));
const heartbeatResponse = fc
  .tuple(envelope, u64)
  .map(([env, context]) => ({ type: 'heartbeatResponse' as const, ...env, context }));
const timeoutNow = envelope.map((env) => ({ type: 'timeoutNow' as const, ...env }));
const snapshotRequest: fc.Arbitrary<SnapshotRequest> = fc
  .tuple(envelope, u64, u64, fc.array(nodeId, { maxLength: 7 }), fc.uint8Array({ maxLength: 3000 }))
  .map(([env, index, term, voters, bytes]) => ({
    type: 'snapshot' as const,
    ...env,
    snapshot: { metadata: { index, term, voters }, data: new Uint8Array(bytes) },
  }));

const batchable: fc.Arbitrary<BatchableMessage> = fc.oneof(
  voteRequest,
  voteResponse,
  append,
  appendResponse,
  heartbeat,
  heartbeatResponse,
  timeoutNow,
);
const anyMessage: fc.Arbitrary<Message> = fc.oneof(batchable, snapshotRequest);

/** Through the generated binary codec, as on a real connection. */
function overTheWire(message: ProtoRaftMessage): ProtoRaftMessage {
  return RaftMessage.decode(RaftMessage.encode(message).finish());
}

function snapshotOverTheWire(
  message: SnapshotRequest,
  chunkBytes: number,
  maxSnapshotBytes = 1 << 20,
): SnapshotRequest {
  const assembler = new InstallSnapshotAssembler({ clusterId: 'weir', maxSnapshotBytes });
  for (const part of installSnapshotRequests(message, { clusterId: 'weir', chunkBytes })) {
    assembler.add(InstallSnapshotRequest.decode(InstallSnapshotRequest.encode(part).finish()));
  }
  return assembler.finish();
}

function roundTrip(message: Message): Message {
  if (message.type === 'snapshot') return snapshotOverTheWire(message, 1000);
  return messageFromProto(overTheWire(messageToProto(message, 'weir')), 'weir');
}

function expectError(run: () => unknown, code: ErrorCode, message?: RegExp): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(isWeirError(thrown, code), `expected ${ErrorCode[code]}, got ${String(thrown)}`).toBe(
    true,
  );
  if (message !== undefined) expect((thrown as Error).message).toMatch(message);
}

const vote: BatchableMessage = {
  type: 'vote',
  from: 1,
  to: 2,
  term: 5,
  lastLogIndex: 10,
  lastLogTerm: 4,
  transfer: false,
};

describe('wire: exact round trips', () => {
  it('every message kind, through the protobuf bytes and back, is the same message', () => {
    fc.assert(
      fc.property(anyMessage, (message) => {
        expect(roundTrip(message)).toStrictEqual(message);
      }),
      { numRuns: 2000 },
    );
  });

  it('entry data comes back as a plain Uint8Array, not a Buffer', () => {
    const message = roundTrip({
      type: 'append',
      from: 1,
      to: 2,
      term: 1,
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [{ index: 1, term: 1, type: 'normal', data: Uint8Array.of(1, 2) }],
      commit: 0,
    });
    expect(message.type === 'append' && Object.getPrototypeOf(message.entries[0]?.data)).toBe(
      Uint8Array.prototype,
    );
  });

  it('a batch of messages for one peer is one SendRequest, in order', () => {
    fc.assert(
      fc.property(nodeId, nodeId, fc.array(batchable, { maxLength: 8 }), (from, to, messages) => {
        const addressed = messages.map((message) => ({ ...message, from, to }));
        const request = SendRequest.decode(
          SendRequest.encode(sendRequestToProto('weir', from, to, addressed)).finish(),
        );
        expect(sendRequestFromProto(request, { clusterId: 'weir', nodeId: to })).toStrictEqual(
          addressed,
        );
      }),
    );
  });

  it('snapshots of any size split into chunks and reassemble exactly', () => {
    fc.assert(
      fc.property(snapshotRequest, fc.integer({ min: 1, max: 700 }), (message, chunkBytes) => {
        const parts = installSnapshotRequests(message, { clusterId: 'weir', chunkBytes });
        expect(parts).toHaveLength(1 + Math.ceil(message.snapshot.data.length / chunkBytes));
        expect(snapshotOverTheWire(message, chunkBytes)).toStrictEqual(message);
      }),
    );
  });

  it('2^53 − 1 is the largest term or index that crosses', () => {
    const message = { ...vote, term: MAX_SAFE, lastLogIndex: MAX_SAFE };
    expect(roundTrip(message)).toStrictEqual(message);
  });
});

describe('wire: refuses what the core must not see', () => {
  const withVote = (patch: Partial<proto.weir.raft.VoteRequest>): ProtoRaftMessage => {
    const base = messageToProto(vote, 'weir');
    if (base.kind?.$case !== 'voteRequest') throw new Error('unreachable');
    return { kind: { $case: 'voteRequest', value: { ...base.kind.value, ...patch } } };
  };

  it('uint64 values above 2^53 − 1, naming the field', () => {
    expectError(
      () => messageFromProto(overTheWire(withVote({ term: 2n ** 53n }))),
      ErrorCode.INVALID_REQUEST,
      /voteRequest\.term = 9007199254740992 is outside \[0, 2\^53 − 1\]/,
    );
    expectError(
      () => messageFromProto(overTheWire(withVote({ lastLogIndex: 2n ** 64n - 1n }))),
      ErrorCode.INVALID_REQUEST,
      /voteRequest\.lastLogIndex/,
    );
  });

  it('negative node ids', () => {
    expectError(
      () => messageFromProto(overTheWire(withVote({ from: -1 }))),
      ErrorCode.INVALID_REQUEST,
      /voteRequest\.from = -1 is not a node id/,
    );
  });

  it('a message of another cluster, but not one that leaves the cluster id to its batch', () => {
    expectError(
      () => messageFromProto(withVote({ clusterId: 'other' }), 'weir'),
      ErrorCode.INCONSISTENT_CLUSTER_ID,
      /"other".*"weir"/,
    );
    expect(messageFromProto(withVote({ clusterId: '' }), 'weir')).toStrictEqual(vote);
    expectError(
      () =>
        sendRequestFromProto(
          { ...sendRequestToProto('other', 1, 2, [vote]) },
          { clusterId: 'weir', nodeId: 2 },
        ),
      ErrorCode.INCONSISTENT_CLUSTER_ID,
    );
  });

  it('a batch for another node, or holding a message of another sender', () => {
    const request = sendRequestToProto('weir', 1, 2, [vote]);
    expectError(
      () => sendRequestFromProto(request, { clusterId: 'weir', nodeId: 3 }),
      ErrorCode.INVALID_REQUEST,
      /for node 2 reached node 3/,
    );
    expectError(
      () => sendRequestFromProto({ ...request, from: 7 }, { clusterId: 'weir', nodeId: 2 }),
      ErrorCode.INVALID_REQUEST,
      /messages\[0\] is from 1 to 2, but the batch is from 7 to 2/,
    );
  });

  it('an empty RaftMessage (an unknown kind from a newer peer decodes to none)', () => {
    expectError(
      () => messageFromProto(RaftMessage.decode(new Uint8Array())),
      ErrorCode.INVALID_REQUEST,
      /no message/,
    );
  });

  const appendWith = (entries: proto.weir.raft.Entry[]): ProtoRaftMessage => ({
    kind: {
      $case: 'appendEntriesRequest',
      value: {
        clusterId: 'weir',
        from: 1,
        to: 2,
        term: 3n,
        prevLogIndex: 4n,
        prevLogTerm: 2n,
        entries,
        commit: 4n,
      },
    },
  });
  const entry = (index: bigint, type = EntryType.ENTRY_TYPE_NORMAL): proto.weir.raft.Entry => ({
    index,
    term: 3n,
    type,
    data: Buffer.alloc(0),
  });

  it('entries that do not follow prevLogIndex, or of no known type', () => {
    expect(messageFromProto(appendWith([entry(5n), entry(6n)]))).toMatchObject({ type: 'append' });
    expectError(
      () => messageFromProto(appendWith([entry(5n), entry(7n)])),
      ErrorCode.INVALID_REQUEST,
      /entries\[1\] has index 7, expected 6/,
    );
    expectError(
      () => messageFromProto(appendWith([entry(4n)])),
      ErrorCode.INVALID_REQUEST,
      /expected 5/,
    );
    expectError(
      () => messageFromProto(appendWith([entry(5n, EntryType.ENTRY_TYPE_UNSPECIFIED)])),
      ErrorCode.INVALID_REQUEST,
      /entries\[0\]\.type 0 is not a known entry type/,
    );
    expectError(
      () => messageFromProto(overTheWire(appendWith([entry(5n, 9 as proto.weir.raft.EntryType)]))),
      ErrorCode.INVALID_REQUEST,
      /type 9/,
    );
  });

  it('outgoing values the wire cannot carry are a bug in the core (ILLEGAL_STATE)', () => {
    expectError(() => messageToProto({ ...vote, term: -1 }), ErrorCode.ILLEGAL_STATE);
    expectError(() => messageToProto({ ...vote, term: 1.5 }), ErrorCode.ILLEGAL_STATE);
    expectError(() => messageToProto({ ...vote, term: 2 ** 53 }), ErrorCode.ILLEGAL_STATE);
    expectError(() => messageToProto({ ...vote, to: 2 ** 31 }), ErrorCode.ILLEGAL_STATE);
  });

  it('arbitrary bytes from the network: a message or a WeirError, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        let decoded: ProtoRaftMessage;
        try {
          decoded = RaftMessage.decode(bytes);
        } catch {
          return; // the protobuf runtime refused the framing; the transport answers that
        }
        try {
          messageFromProto(decoded, 'weir');
        } catch (error) {
          expect(
            isWeirError(error, ErrorCode.INVALID_REQUEST) ||
              isWeirError(error, ErrorCode.INCONSISTENT_CLUSTER_ID),
            String(error),
          ).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('wire: InstallSnapshot streams that do not add up', () => {
  const message: SnapshotRequest = {
    type: 'snapshot',
    from: 1,
    to: 2,
    term: 4,
    snapshot: {
      metadata: { index: 9, term: 3, voters: [1, 2, 3] },
      data: Uint8Array.of(1, 2, 3, 4, 5),
    },
  };
  const parts = (): ProtoInstallSnapshotRequest[] =>
    installSnapshotRequests(message, { clusterId: 'weir', chunkBytes: 2 });
  const assembler = (maxSnapshotBytes = 100) =>
    new InstallSnapshotAssembler({ clusterId: 'weir', maxSnapshotBytes });

  it('a chunk before the header, a second header, an empty part', () => {
    const [header, chunk] = parts() as [ProtoInstallSnapshotRequest, ProtoInstallSnapshotRequest];
    expectError(() => assembler().add(chunk), ErrorCode.INVALID_REQUEST, /before the header/);
    const twice = assembler();
    twice.add(header);
    expectError(() => twice.add(header), ErrorCode.INVALID_REQUEST, /second header/);
    expectError(() => assembler().add({ part: undefined }), ErrorCode.INVALID_REQUEST, /no part/);
    expectError(() => assembler().finish(), ErrorCode.INVALID_REQUEST, /without a header/);
  });

  it('more or fewer bytes than the header says', () => {
    const all = parts();
    const short = assembler();
    all.slice(0, -1).forEach((part) => short.add(part));
    expectError(() => short.finish(), ErrorCode.INVALID_REQUEST, /after 4 of 5 bytes/);
    const long = assembler();
    all.forEach((part) => long.add(part));
    expectError(
      () => long.add({ part: { $case: 'chunk', value: Buffer.of(9) } }),
      ErrorCode.INVALID_REQUEST,
      /more than the header's 5 bytes/,
    );
  });

  it('data that fails its CRC-32C', () => {
    const all = parts();
    const damaged = assembler();
    all.forEach((part, i) =>
      damaged.add(i === 1 ? { part: { $case: 'chunk', value: Buffer.of(1, 7) } } : part),
    );
    expectError(() => damaged.finish(), ErrorCode.CORRUPT_MESSAGE, /CRC-32C/);
  });

  it('a snapshot larger than this node accepts, refused before it is buffered', () => {
    const [header] = parts() as [ProtoInstallSnapshotRequest];
    expectError(
      () => assembler(4).add(header),
      ErrorCode.INVALID_REQUEST,
      /5 bytes is larger than the 4/,
    );
    const huge = { ...header };
    if (huge.part?.$case === 'header')
      huge.part = { $case: 'header', value: { ...huge.part.value, dataBytes: 2n ** 60n } };
    expectError(() => assembler().add(huge), ErrorCode.INVALID_REQUEST, /dataBytes/);
  });

  it('a snapshot of another cluster', () => {
    const [header] = installSnapshotRequests(message, { clusterId: 'other' }) as [
      ProtoInstallSnapshotRequest,
    ];
    expectError(() => assembler().add(header), ErrorCode.INCONSISTENT_CLUSTER_ID);
  });
});
