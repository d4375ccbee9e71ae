// Errors the client adds to the registry's WeirError: one topic's failure inside a multi-topic
// answer, and the error thrown when any topic of an admin request failed (KafkaJS throws a
// KafkaJSAggregateError / KafkaJSDeleteTopicRecordsError the same way, with the per-topic
// outcomes attached).

import { ErrorCode, WeirError, errorName, type proto } from '@weir/protocol';

/** The outcome of one topic in an admin request; `error` is absent when it succeeded. */
export interface TopicOutcome {
  readonly name: string;
  readonly error?: WeirError;
}

/** A WeirError for a per-topic ErrorStatus, or undefined for NONE. */
export function fromErrorStatus(
  status: proto.weir.common.ErrorStatus | undefined,
): WeirError | undefined {
  if (status === undefined) return undefined;
  const code = status.code as ErrorCode;
  if (code === ErrorCode.NONE) return undefined;
  // Servers may send a WeirError's whole message, which already starts with the code's name.
  const prefix = `${errorName(code)}: `;
  const detail = status.message.startsWith(prefix)
    ? status.message.slice(prefix.length)
    : status.message;
  return new WeirError(code, detail === '' ? undefined : detail);
}

/** The part of a WeirError's message after `NAME: `. */
export function errorDetail(error: WeirError): string {
  const prefix = `${errorName(error.code)}: `;
  return error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
}

/**
 * Thrown by an admin request when one or more of its topics failed. `code` is the first
 * failure's; `retriable` holds only if every failure is retriable; `results` has every topic's
 * outcome, the successful ones too, so a caller can see what did happen.
 */
export class WeirAdminError<T extends TopicOutcome = TopicOutcome> extends WeirError {
  override readonly retriable: boolean;
  readonly results: readonly T[];
  /** The topics that failed, each with its error. */
  readonly failures: readonly (T & { readonly error: WeirError })[];

  /** `action` completes "could not … topic 'x'", e.g. 'create' or 'add partitions to'. */
  constructor(action: string, results: readonly T[]) {
    const failures = results.filter((r): r is T & { error: WeirError } => r.error !== undefined);
    const first = failures[0];
    if (first === undefined) {
      throw new WeirError(
        ErrorCode.ILLEGAL_STATE,
        `WeirAdminError (${action}) without a failed topic`,
      );
    }
    super(first.error.code, describeFailures(action, results.length, failures));
    this.results = results;
    this.failures = failures;
    this.retriable = failures.every((f) => f.error.retriable);
  }
}

function describeFailures(
  action: string,
  total: number,
  failures: readonly { readonly name: string; readonly error: WeirError }[],
): string {
  if (failures.length === 1 && total === 1) {
    const [only] = failures;
    return `could not ${action} topic '${only!.name}': ${errorDetail(only!.error)}`;
  }
  const each = failures.map((f) => `'${f.name}': ${f.error.message}`).join('; ');
  return `could not ${action} ${failures.length} of ${total} topics: ${each}`;
}

/** Throws a WeirAdminError if any topic failed, else returns the results. */
export function throwIfAnyFailed<T extends TopicOutcome>(
  action: string,
  results: readonly T[],
): T[] {
  if (results.some((r) => r.error !== undefined)) throw new WeirAdminError(action, results);
  return [...results];
}
