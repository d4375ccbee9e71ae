// Server-side gRPC plumbing shared by every service: a unary handler that answers with what a
// promise resolves to, or with the WeirError it rejects with (grpc-errors.ts).

import type { ServerUnaryCall, handleUnaryCall } from '@grpc/grpc-js';
import { toServiceError } from './grpc-errors.js';

export function unary<Request, Response>(
  handler: (
    request: Request,
    call: ServerUnaryCall<Request, Response>,
  ) => Promise<Response> | Response,
): handleUnaryCall<Request, Response> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => handler(call.request, call))
      .then(
        (response) => callback(null, response),
        (error: unknown) => callback(toServiceError(error)),
      );
  };
}
