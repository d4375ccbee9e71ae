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
