export { Weir } from './weir.js';
export {
  DEFAULT_REQUEST_TIMEOUT_MS,
  type ResolvedConfig,
  type WeirConfig,
  parseBootstrap,
} from './config.js';
export { Admin } from './admin/admin.js';
export type * from './admin/types.js';
export { WeirAdminError, type TopicOutcome } from './errors.js';
// The errors the client throws, so that callers need not depend on @weir/protocol.
export { ErrorCode, WeirError, errorName, isWeirError } from '@weir/protocol';
