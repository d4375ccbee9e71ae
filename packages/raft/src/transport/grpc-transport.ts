// Raft messages over gRPC. Each node keeps one long-lived client stream (`Send`) per peer and
// writes one SendRequest per Ready holding every message for that peer; snapshots go on their
// own chunked `InstallSnapshot` call. Raft tolerates lost messages, so this transport never
// blocks the core: a message to a peer that is down, or whose queue is full, is dropped and
// counted, and the stream is opened again after a back-off.

import {
  type ChannelOptions,
  type ClientWritableStream,
  type ServerReadableStream,
  type sendUnaryData,
  credentials,
} from '@grpc/grpc-js';
import { ErrorCode, WeirError, proto, toServiceError } from '@weir/protocol';
import type { Message, NodeId, SnapshotRequest } from '../core/types.js';
import type { RaftTransport } from '../node/raft-node.js';
import {
  type BatchableMessage,
  InstallSnapshotAssembler,
  installSnapshotRequests,
  sendRequestFromProto,
  sendRequestToProto,
} from './wire.js';

type SendRequest = proto.weir.raft.SendRequest;
type InstallSnapshotRequest = proto.weir.raft.InstallSnapshotRequest;

const MiB = 1024 * 1024;

/**
 * Limits on what one message may carry, and keepalive so a dead peer is noticed within
 * seconds rather than at the next TCP timeout. Both sides set them explicitly.
 */
export const RAFT_GRPC_MAX_MESSAGE_BYTES = 16 * MiB;
export const RAFT_GRPC_CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.max_receive_message_length': RAFT_GRPC_MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': RAFT_GRPC_MAX_MESSAGE_BYTES,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2_000,
};
export const RAFT_GRPC_SERVER_OPTIONS: ChannelOptions = {
  'grpc.max_receive_message_length': RAFT_GRPC_MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': RAFT_GRPC_MAX_MESSAGE_BYTES,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
};

export interface GrpcRaftTransportOptions {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  /** host:port of every other voter's controller listener. */
  readonly peers: ReadonlyMap<NodeId, string>;
  /** SendRequests waiting in one peer's stream before new ones are dropped. */
  readonly maxQueuedRequestsPerPeer?: number;
  readonly snapshotChunkBytes?: number;
  /** The largest snapshot this node accepts. */
  readonly maxSnapshotBytes?: number;
  readonly snapshotTimeoutMs?: number;
  /** After a stream to a peer fails, how long before the first retry; doubles up to 2 s. */
  readonly reconnectBackoffMs?: number;
  /** Told about failed streams and refused requests (for logs). */
  readonly onError?: (peer: NodeId | undefined, error: unknown) => void;
}

/** Counters for metrics and tests. */
export interface TransportStats {
  sentRequests: number;
  droppedMessages: number;
  receivedMessages: number;
  rejectedRequests: number;
}

const MAX_RECONNECT_BACKOFF_MS = 2_000;

export class GrpcRaftTransport implements RaftTransport {
  readonly stats: TransportStats = {
    sentRequests: 0,
    droppedMessages: 0,
    receivedMessages: 0,
    rejectedRequests: 0,
  };
  private readonly peers = new Map<NodeId, PeerConnection>();
  private handler: ((message: Message) => void) | undefined;
  private closed = false;

  constructor(private readonly options: GrpcRaftTransportOptions) {
    for (const [id, address] of options.peers) {
      if (id !== options.nodeId)
        this.peers.set(id, new PeerConnection(id, address, options, this.stats));
    }
  }

  onMessage(handler: (message: Message) => void): void {
    this.handler = handler;
  }

  send(messages: readonly Message[]): void {
    if (this.closed) return;
    const batches = new Map<NodeId, BatchableMessage[]>();
    for (const message of messages) {
      const peer = this.peers.get(message.to);
      if (peer === undefined) {
        this.stats.droppedMessages++;
        continue;
      }
      if (message.type === 'snapshot') {
        peer.sendSnapshot(message);
        continue;
      }
      let batch = batches.get(message.to);
      if (batch === undefined) batches.set(message.to, (batch = []));
      batch.push(message);
    }
    for (const [to, batch] of batches) this.peers.get(to)!.send(batch);
  }

  /**
   * The server half: handlers for `Send` and `InstallSnapshot` to add to the node's controller
   * gRPC server (with FetchLog and FetchSnapshot from the observer side).
   */
  serverHandlers(): Pick<proto.weir.raft.RaftServiceServer, 'send' | 'installSnapshot'> {
    return {
      send: (call, callback) => this.serveSend(call, callback),
      installSnapshot: (call, callback) => this.serveInstallSnapshot(call, callback),
    };
  }

  private serveSend(
    call: ServerReadableStream<SendRequest, proto.weir.raft.SendResponse>,
    callback: sendUnaryData<proto.weir.raft.SendResponse>,
  ): void {
    let failed = false;
    call.on('data', (request: SendRequest) => {
      if (failed) return;
      let messages: BatchableMessage[];
      try {
        messages = sendRequestFromProto(request, {
          clusterId: this.options.clusterId,
          nodeId: this.options.nodeId,
        });
      } catch (error) {
        failed = true;
        this.refuse(error, request.from, callback);
        return;
      }
      this.deliver(messages);
    });
    call.on('end', () => {
      if (!failed) callback(null, {});
    });
    call.on('error', () => undefined); // the peer went away; its messages are simply lost
  }

  private serveInstallSnapshot(
    call: ServerReadableStream<InstallSnapshotRequest, proto.weir.raft.InstallSnapshotResponse>,
    callback: sendUnaryData<proto.weir.raft.InstallSnapshotResponse>,
  ): void {
    const assembler = new InstallSnapshotAssembler({
      clusterId: this.options.clusterId,
      maxSnapshotBytes: this.options.maxSnapshotBytes ?? 1024 * MiB,
    });
    let failed = false;
    call.on('data', (request: InstallSnapshotRequest) => {
      if (failed) return;
      try {
        assembler.add(request);
      } catch (error) {
        failed = true;
        this.refuse(error, undefined, callback);
      }
    });
    call.on('end', () => {
      if (failed) return;
      let message: SnapshotRequest;
      try {
        message = assembler.finish();
        if (message.to !== this.options.nodeId) {
          throw new WeirError(
            ErrorCode.INVALID_REQUEST,
            `snapshot for node ${message.to} reached node ${this.options.nodeId}`,
          );
        }
      } catch (error) {
        this.refuse(error, undefined, callback);
        return;
      }
      this.deliver([message]);
      callback(null, {}); // the core answers later, with an append response on its own stream
    });
    call.on('error', () => undefined);
  }

  private deliver(messages: readonly Message[]): void {
    this.stats.receivedMessages += messages.length;
    if (this.closed || this.handler === undefined) return;
    for (const message of messages) this.handler(message);
  }

  private refuse(error: unknown, from: NodeId | undefined, callback: sendUnaryData<never>): void {
    this.stats.rejectedRequests++;
    this.options.onError?.(from, error);
    callback(toServiceError(error), null);
  }

  close(): void {
    this.closed = true;
    for (const peer of this.peers.values()) peer.close();
  }
}

/** The client side towards one peer: its channel, its Send stream, its snapshot call. */
class PeerConnection {
  private readonly client: proto.weir.raft.RaftServiceClient;
  private stream: ClientWritableStream<SendRequest> | undefined;
  private streamOpenedAt = 0;
  private retryAt = 0;
  private backoffMs: number;
  private snapshotInFlight = false;

  constructor(
    private readonly id: NodeId,
    address: string,
    private readonly options: GrpcRaftTransportOptions,
    private readonly stats: TransportStats,
  ) {
    this.client = new proto.weir.raft.RaftServiceClient(
      address,
      credentials.createInsecure(),
      RAFT_GRPC_CHANNEL_OPTIONS,
    );
    this.backoffMs = options.reconnectBackoffMs ?? 50;
  }

  send(messages: readonly BatchableMessage[]): void {
    const stream = this.openStream();
    const limit = this.options.maxQueuedRequestsPerPeer ?? 256;
    // Object-mode stream: writableLength counts requests not yet handed to HTTP/2.
    if (stream === undefined || stream.writableLength >= limit) {
      this.stats.droppedMessages += messages.length;
      return;
    }
    stream.write(
      sendRequestToProto(this.options.clusterId, this.options.nodeId, this.id, messages),
    );
    this.stats.sentRequests++;
  }

  private openStream(): ClientWritableStream<SendRequest> | undefined {
    if (this.stream !== undefined) return this.stream;
    const now = Date.now();
    if (now < this.retryAt) return undefined;
    const stream = this.client.send((error) => {
      if (this.stream === stream) this.stream = undefined;
      if (error !== null) this.onStreamFailure(error);
    });
    this.stream = stream;
    this.streamOpenedAt = now;
    return stream;
  }

  private onStreamFailure(error: unknown): void {
    // A stream that lived a while was healthy: start the back-off again from the bottom.
    if (Date.now() - this.streamOpenedAt > MAX_RECONNECT_BACKOFF_MS) {
      this.backoffMs = this.options.reconnectBackoffMs ?? 50;
    }
    this.retryAt = Date.now() + this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_RECONNECT_BACKOFF_MS);
    this.options.onError?.(this.id, error);
  }

  /** One snapshot at a time per peer; the core sends it again if this one is lost. */
  sendSnapshot(message: SnapshotRequest): void {
    if (this.snapshotInFlight) {
      this.stats.droppedMessages++;
      return;
    }
    this.snapshotInFlight = true;
    const deadline = Date.now() + (this.options.snapshotTimeoutMs ?? 60_000);
    const call = this.client.installSnapshot({ deadline }, (error) => {
      this.snapshotInFlight = false;
      if (error !== null) this.options.onError?.(this.id, error);
    });
    const requests = installSnapshotRequests(message, {
      clusterId: this.options.clusterId,
      ...(this.options.snapshotChunkBytes !== undefined && {
        chunkBytes: this.options.snapshotChunkBytes,
      }),
    });
    for (const request of requests) call.write(request);
    call.end();
    this.stats.sentRequests++;
  }

  close(): void {
    this.stream?.end();
    this.stream = undefined;
    this.client.close();
  }
}
