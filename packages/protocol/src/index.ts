export { crc32c } from './crc32c.js';
export { ErrorCode, WeirError, assert, errorInfo, errorName, isWeirError } from './errors.js';
export { ERROR_CODE_METADATA_KEY, fromServiceError, toServiceError } from './grpc-errors.js';
export { unary } from './grpc-handlers.js';
export * from './record-batch/index.js';
export * as proto from './gen/index.js';
