export { DEFAULT_RAFT_CONFIG, RaftCore } from './core/raft.js';
export * from './core/types.js';
export {
  RaftNode,
  type RaftNodeOptions,
  type RaftNodeStorage,
  type RaftTransport,
  type StateMachine,
} from './node/raft-node.js';
export { type QuorumVoter, checkVoterMembership, parseQuorumVoters } from './node/quorum-voters.js';
export {
  type PersistRequest,
  RaftStorage,
  type RaftStorageOptions,
} from './storage/raft-storage.js';
export {
  GrpcRaftTransport,
  type GrpcRaftTransportOptions,
  RAFT_GRPC_CHANNEL_OPTIONS,
  RAFT_GRPC_SERVER_OPTIONS,
  type TransportStats,
} from './transport/grpc-transport.js';
export { LogFetchServer, type LogFetchServerOptions } from './observer/fetch-server.js';
export {
  type ObserverStateMachine,
  RaftObserver,
  type RaftObserverOptions,
} from './observer/observer.js';
export { LocalRaftNetwork, MemoryRaftStorage } from './memory/in-memory.js';
