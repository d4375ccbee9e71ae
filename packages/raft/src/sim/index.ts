// The deterministic simulator of the Raft core: a library for the tests and `pnpm sim`.
// Not part of @weir/raft's public surface (src/index.ts).

export { type CheckedNode, SafetyChecker, SafetyViolation } from './checker.js';
export { FAULT_PROFILES, type FaultProfile, type FaultProfileName } from './faults.js';
export { KvStateMachine, decodeCommand, encodeCommand, type Command, type Output } from './kv.js';
export {
  type HistoryEntry,
  type LinearizabilityResult,
  type RegisterOp,
  checkLinearizability,
} from './linearizability.js';
export { Prng } from './prng.js';
export {
  DEFAULT_SIM_OPTIONS,
  EXCEPTION,
  type SimOptions,
  type SimResult,
  type SimStats,
  SimulationFailure,
  type Variant,
  replayCommand,
  runSimulation,
  sweepOptions,
} from './simulator.js';
export { StorageModel } from './storage-model.js';
export { TICK_MS } from './trace.js';
