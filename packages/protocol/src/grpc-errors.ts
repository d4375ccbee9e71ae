// How a WeirError crosses gRPC: the Weir code in a `weir-error-code` trailer, the message as
// the status details, and a gRPC status chosen so generic gRPC tooling reads it sensibly.
// Clients turn it back into the same WeirError with fromServiceError.

import { Metadata, type ServiceError, type StatusObject, status } from '@grpc/grpc-js';
import { ErrorCode, WeirError, errorName } from './errors.js';

export const ERROR_CODE_METADATA_KEY = 'weir-error-code';

function grpcStatusFor(error: WeirError): status {
  switch (error.code) {
    case ErrorCode.REQUEST_TIMED_OUT:
      return status.DEADLINE_EXCEEDED;
    case ErrorCode.UNKNOWN_SERVER_ERROR:
    case ErrorCode.ILLEGAL_STATE:
      return status.INTERNAL;
    case ErrorCode.INVALID_REQUEST:
    case ErrorCode.INVALID_CONFIG:
    case ErrorCode.CORRUPT_MESSAGE:
    case ErrorCode.INVALID_TOPIC_EXCEPTION:
    case ErrorCode.INVALID_PARTITIONS:
    case ErrorCode.INVALID_REPLICATION_FACTOR:
    case ErrorCode.INVALID_REQUIRED_ACKS:
      return status.INVALID_ARGUMENT;
    default:
      return error.retriable ? status.UNAVAILABLE : status.FAILED_PRECONDITION;
  }
}

/** The status a server handler passes to its callback (or emits) for `error`. */
export function toServiceError(error: unknown): Partial<StatusObject> {
  const weirError =
    error instanceof WeirError
      ? error
      : new WeirError(
          ErrorCode.UNKNOWN_SERVER_ERROR,
          error instanceof Error ? error.message : String(error),
        );
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_METADATA_KEY, String(weirError.code));
  return { code: grpcStatusFor(weirError), details: weirError.message, metadata };
}

/** The WeirError a failed call stands for; transport failures map to Kafka's network errors. */
export function fromServiceError(error: ServiceError): WeirError {
  const raw = error.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
  const code = raw === undefined ? undefined : Number(raw);
  if (code !== undefined && Number.isInteger(code) && ErrorCode[code] !== undefined) {
    const prefix = `${errorName(code)}: `;
    const detail = error.details.startsWith(prefix)
      ? error.details.slice(prefix.length)
      : error.details;
    return new WeirError(code, detail, { cause: error });
  }
  switch (error.code) {
    case status.DEADLINE_EXCEEDED:
      return new WeirError(ErrorCode.REQUEST_TIMED_OUT, error.details, { cause: error });
    case status.UNAVAILABLE:
    case status.CANCELLED:
      return new WeirError(ErrorCode.NETWORK_EXCEPTION, error.details, { cause: error });
    default:
      return new WeirError(
        ErrorCode.UNKNOWN_SERVER_ERROR,
        `${status[error.code]}: ${error.details}`,
        {
          cause: error,
        },
      );
  }
}
