export { DEFAULT_RAFT_CONFIG, RaftCore } from './core/raft.js';
export * from './core/types.js';
