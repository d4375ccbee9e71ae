// A Raft cluster in one process for integration tests: each voter has its own gRPC server on
// loopback, real `level` storage and the gRPC transport, and serves FetchLog to observers.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { proto } from '@weir/protocol';
import type { Entry, NodeId, Snapshot } from '../src/core/types.js';
import { RaftNode } from '../src/node/raft-node.js';
import { LogFetchServer } from '../src/observer/fetch-server.js';
import { RaftStorage } from '../src/storage/raft-storage.js';
import { GrpcRaftTransport, RAFT_GRPC_SERVER_OPTIONS } from '../src/transport/grpc-transport.js';

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A state machine that records the values of applied entries. */
export class Register {
  values: string[] = [];
  apply(entries: readonly Entry[]): void {
    for (const e of entries)
      if (e.type === 'normal') this.values.push(new TextDecoder().decode(e.data));
  }
  restore(snapshot: Snapshot): void {
    this.values = JSON.parse(new TextDecoder().decode(snapshot.data)) as string[];
  }
  reset(): void {
    this.values = [];
  }
  snapshotData(): Uint8Array {
    return text(JSON.stringify(this.values));
  }
}

export interface Member {
  readonly id: NodeId;
  readonly server: Server;
  readonly storage: RaftStorage;
  readonly transport: GrpcRaftTransport;
  readonly node: RaftNode;
  readonly register: Register;
}

export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function bind(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
}

export class GrpcCluster {
  readonly members = new Map<NodeId, Member>();
  readonly ports = new Map<NodeId, number>();
  private dir = '';

  constructor(
    readonly voters: readonly NodeId[],
    readonly clusterId = 'grpc-cluster-test',
    private readonly proposeTimeoutMs = 5000,
  ) {}

  /** Binds every server first (port 0), so each transport knows its peers' real ports. */
  async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'weir-raft-grpc-'));
    const servers = new Map<NodeId, Server>();
    for (const id of this.voters) {
      const server = new Server(RAFT_GRPC_SERVER_OPTIONS);
      servers.set(id, server);
      this.ports.set(id, await bind(server, 0));
    }
    for (const id of this.voters) await this.startMember(id, servers.get(id));
  }

  /** host:port of every voter. */
  addresses(): Map<NodeId, string> {
    return new Map(this.voters.map((v) => [v, `127.0.0.1:${this.ports.get(v)}`]));
  }

  /** Starts (or restarts, on its old port and data) one voter. */
  async startMember(id: NodeId, server?: Server): Promise<Member> {
    if (server === undefined) {
      server = new Server(RAFT_GRPC_SERVER_OPTIONS);
      await bind(server, this.ports.get(id)!);
    }
    const transport = new GrpcRaftTransport({
      nodeId: id,
      clusterId: this.clusterId,
      peers: this.addresses(),
      reconnectBackoffMs: 20,
    });
    const storage = await RaftStorage.open(join(this.dir, `node-${id}`), {
      nodeId: id,
      clusterId: this.clusterId,
    });
    const register = new Register();
    const node = await RaftNode.start({
      id,
      voters: this.voters,
      storage,
      transport,
      stateMachine: register,
      tickMs: 20,
      proposeTimeoutMs: this.proposeTimeoutMs,
    });
    const fetchServer = new LogFetchServer(node, { clusterId: this.clusterId });
    const implementation: proto.weir.raft.RaftServiceServer = {
      ...transport.serverHandlers(),
      ...fetchServer.handlers(),
    };
    server.addService(proto.weir.raft.RaftServiceService, implementation);
    const member = { id, server, storage, transport, node, register };
    this.members.set(id, member);
    return member;
  }

  async stopMember(id: NodeId): Promise<void> {
    const member = this.members.get(id);
    if (member === undefined) return;
    this.members.delete(id);
    await member.node.stop();
    member.transport.close();
    member.server.forceShutdown();
    await member.storage.close();
  }

  leader(): Member | undefined {
    return [...this.members.values()].find((m) => m.node.isLeader);
  }

  async stop(): Promise<void> {
    for (const id of [...this.members.keys()]) await this.stopMember(id);
    if (this.dir !== '') await rm(this.dir, { recursive: true, force: true });
  }
}
