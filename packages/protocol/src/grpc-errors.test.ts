import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ErrorCode, WeirError } from './errors.js';
import { fromServiceError, toServiceError } from './grpc-errors.js';

function asServiceError(object: ReturnType<typeof toServiceError>): ServiceError {
  return Object.assign(new Error(object.details), {
    code: object.code!,
    details: object.details!,
    metadata: object.metadata ?? new Metadata(),
  });
}

describe('WeirError over gRPC', () => {
  it('keeps the code and message through a round trip', () => {
    const original = new WeirError(ErrorCode.NOT_CONTROLLER, 'the leader is node 2');
    const status_ = toServiceError(original);
    expect(status_.code).toBe(status.UNAVAILABLE); // retriable
    const back = fromServiceError(asServiceError(status_));
    expect(back.code).toBe(ErrorCode.NOT_CONTROLLER);
    expect(back.message).toBe(original.message);
    expect(back.retriable).toBe(true);
  });

  it('reports non-Weir errors as UNKNOWN_SERVER_ERROR, and transport failures as network errors', () => {
    expect(fromServiceError(asServiceError(toServiceError(new Error('boom')))).code).toBe(
      ErrorCode.UNKNOWN_SERVER_ERROR,
    );
    const unavailable = asServiceError({ code: status.UNAVAILABLE, details: 'connection refused' });
    expect(fromServiceError(unavailable).code).toBe(ErrorCode.NETWORK_EXCEPTION);
    const deadline = asServiceError({ code: status.DEADLINE_EXCEEDED, details: 'deadline' });
    expect(fromServiceError(deadline).code).toBe(ErrorCode.REQUEST_TIMED_OUT);
  });
});
