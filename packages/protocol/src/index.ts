export { ErrorCode, WeirError, assert, errorInfo, errorName, isWeirError } from './errors.js';
