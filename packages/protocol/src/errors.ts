// The one registry of errors. Codes are Kafka's names and numbers where Kafka has the error
// (see Kafka's `org.apache.kafka.common.protocol.Errors`), so a later Kafka-wire listener maps
// them one to one; errors Kafka has no code for live at 10000 and above.

export enum ErrorCode {
  UNKNOWN_SERVER_ERROR = -1,
  NONE = 0,
  OFFSET_OUT_OF_RANGE = 1,
  CORRUPT_MESSAGE = 2,
  UNKNOWN_TOPIC_OR_PARTITION = 3,
  INVALID_FETCH_SIZE = 4,
  LEADER_NOT_AVAILABLE = 5,
  NOT_LEADER_OR_FOLLOWER = 6,
  REQUEST_TIMED_OUT = 7,
  BROKER_NOT_AVAILABLE = 8,
  REPLICA_NOT_AVAILABLE = 9,
  MESSAGE_TOO_LARGE = 10,
  NETWORK_EXCEPTION = 13,
  COORDINATOR_LOAD_IN_PROGRESS = 14,
  COORDINATOR_NOT_AVAILABLE = 15,
  NOT_COORDINATOR = 16,
  INVALID_TOPIC_EXCEPTION = 17,
  RECORD_LIST_TOO_LARGE = 18,
  NOT_ENOUGH_REPLICAS = 19,
  NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20,
  INVALID_REQUIRED_ACKS = 21,
  ILLEGAL_GENERATION = 22,
  INCONSISTENT_GROUP_PROTOCOL = 23,
  INVALID_GROUP_ID = 24,
  UNKNOWN_MEMBER_ID = 25,
  INVALID_SESSION_TIMEOUT = 26,
  REBALANCE_IN_PROGRESS = 27,
  INVALID_COMMIT_OFFSET_SIZE = 28,
  INVALID_TIMESTAMP = 32,
  UNSUPPORTED_VERSION = 35,
  TOPIC_ALREADY_EXISTS = 36,
  INVALID_PARTITIONS = 37,
  INVALID_REPLICATION_FACTOR = 38,
  INVALID_REPLICA_ASSIGNMENT = 39,
  INVALID_CONFIG = 40,
  NOT_CONTROLLER = 41,
  INVALID_REQUEST = 42,
  POLICY_VIOLATION = 44,
  OUT_OF_ORDER_SEQUENCE_NUMBER = 45,
  DUPLICATE_SEQUENCE_NUMBER = 46,
  INVALID_PRODUCER_EPOCH = 47,
  KAFKA_STORAGE_ERROR = 56,
  UNKNOWN_PRODUCER_ID = 59,
  GROUP_ID_NOT_FOUND = 69,
  FENCED_LEADER_EPOCH = 74,
  UNKNOWN_LEADER_EPOCH = 75,
  UNSUPPORTED_COMPRESSION_TYPE = 76,
  STALE_BROKER_EPOCH = 77,
  OFFSET_NOT_AVAILABLE = 78,
  ELIGIBLE_LEADERS_NOT_AVAILABLE = 83,
  INVALID_RECORD = 87,
  THROTTLING_QUOTA_EXCEEDED = 89,
  INCONSISTENT_VOTER_SET = 94,
  INVALID_UPDATE_VERSION = 95,
  SNAPSHOT_NOT_FOUND = 98,
  UNKNOWN_TOPIC_ID = 100,
  DUPLICATE_BROKER_REGISTRATION = 101,
  INCONSISTENT_CLUSTER_ID = 104,
  INELIGIBLE_REPLICA = 107,

  // Weir's own, for conditions Kafka reports only as exceptions in its logs.
  LOG_DIRECTORY_LOCKED = 10001,
  CORRUPT_STORE = 10002,
  ILLEGAL_STATE = 10003,
}

interface ErrorInfo {
  /** A retriable error may succeed if the same request is sent again later. */
  readonly retriable: boolean;
  /** What happened and what to do about it, for the user reading the message. */
  readonly message: string;
}

const registry: Record<ErrorCode, ErrorInfo> = {
  [ErrorCode.UNKNOWN_SERVER_ERROR]: {
    retriable: false,
    message: 'The server hit an unexpected error; its log has the details.',
  },
  [ErrorCode.NONE]: { retriable: false, message: 'No error.' },
  [ErrorCode.OFFSET_OUT_OF_RANGE]: {
    retriable: false,
    message:
      'The requested offset is outside the range the partition holds; reset to the earliest or latest offset.',
  },
  [ErrorCode.CORRUPT_MESSAGE]: {
    retriable: true,
    message: 'The record batch failed validation (CRC, length or framing); nothing was written.',
  },
  [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]: {
    retriable: true,
    message: 'This server does not host the topic-partition; check the name or refresh metadata.',
  },
  [ErrorCode.INVALID_FETCH_SIZE]: {
    retriable: false,
    message: 'The fetch size is invalid; use a positive maxBytes.',
  },
  [ErrorCode.LEADER_NOT_AVAILABLE]: {
    retriable: true,
    message: 'The partition has no leader right now (an election is under way); retry shortly.',
  },
  [ErrorCode.NOT_LEADER_OR_FOLLOWER]: {
    retriable: true,
    message:
      'This broker is not the leader for the partition; refresh metadata and send to the leader.',
  },
  [ErrorCode.REQUEST_TIMED_OUT]: {
    retriable: true,
    message: 'The request did not complete within its timeout.',
  },
  [ErrorCode.BROKER_NOT_AVAILABLE]: { retriable: false, message: 'The broker is not available.' },
  [ErrorCode.REPLICA_NOT_AVAILABLE]: {
    retriable: true,
    message: 'The replica is not available on this broker yet.',
  },
  [ErrorCode.MESSAGE_TOO_LARGE]: {
    retriable: false,
    message:
      'The record batch is larger than the topic allows (max.message.bytes); send smaller batches or raise the limit.',
  },
  [ErrorCode.NETWORK_EXCEPTION]: {
    retriable: true,
    message: 'The connection to the server broke before a response arrived.',
  },
  [ErrorCode.COORDINATOR_LOAD_IN_PROGRESS]: {
    retriable: true,
    message: 'The coordinator is still loading its state; retry shortly.',
  },
  [ErrorCode.COORDINATOR_NOT_AVAILABLE]: {
    retriable: true,
    message: 'The coordinator is not available; retry shortly.',
  },
  [ErrorCode.NOT_COORDINATOR]: {
    retriable: true,
    message: 'This broker is not the coordinator for the group; find the coordinator again.',
  },
  [ErrorCode.INVALID_TOPIC_EXCEPTION]: {
    retriable: false,
    message: 'The topic name is invalid; use 1-249 characters from [a-zA-Z0-9._-].',
  },
  [ErrorCode.RECORD_LIST_TOO_LARGE]: {
    retriable: false,
    message: 'The request holds more record bytes than the server accepts in one request.',
  },
  [ErrorCode.NOT_ENOUGH_REPLICAS]: {
    retriable: true,
    message:
      'Fewer in-sync replicas than min.insync.replicas; the write was refused (acks=all). Retry when replicas catch up.',
  },
  [ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND]: {
    retriable: true,
    message: 'The write was appended but the in-sync replicas fell below min.insync.replicas.',
  },
  [ErrorCode.INVALID_REQUIRED_ACKS]: {
    retriable: false,
    message: 'acks must be 0, 1 or all (-1).',
  },
  [ErrorCode.ILLEGAL_GENERATION]: {
    retriable: false,
    message: 'The group generation is stale; rejoin the group.',
  },
  [ErrorCode.INCONSISTENT_GROUP_PROTOCOL]: {
    retriable: false,
    message: "The member's protocol does not match the group's.",
  },
  [ErrorCode.INVALID_GROUP_ID]: { retriable: false, message: 'The group id is invalid.' },
  [ErrorCode.UNKNOWN_MEMBER_ID]: {
    retriable: false,
    message: 'The coordinator does not know this member; rejoin the group.',
  },
  [ErrorCode.INVALID_SESSION_TIMEOUT]: {
    retriable: false,
    message: 'The session timeout is outside the range the broker allows.',
  },
  [ErrorCode.REBALANCE_IN_PROGRESS]: {
    retriable: false,
    message: 'The group is rebalancing; rejoin.',
  },
  [ErrorCode.INVALID_COMMIT_OFFSET_SIZE]: {
    retriable: false,
    message: 'The offset commit metadata is too large.',
  },
  [ErrorCode.INVALID_TIMESTAMP]: {
    retriable: false,
    message: 'A record timestamp is invalid.',
  },
  [ErrorCode.UNSUPPORTED_VERSION]: {
    retriable: false,
    message: 'The server does not support this version of the request.',
  },
  [ErrorCode.TOPIC_ALREADY_EXISTS]: { retriable: false, message: 'The topic already exists.' },
  [ErrorCode.INVALID_PARTITIONS]: {
    retriable: false,
    message: 'The number of partitions is invalid; it must be at least 1.',
  },
  [ErrorCode.INVALID_REPLICATION_FACTOR]: {
    retriable: false,
    message:
      'The replication factor is invalid; it must be between 1 and the number of live brokers.',
  },
  [ErrorCode.INVALID_REPLICA_ASSIGNMENT]: {
    retriable: false,
    message: 'The replica assignment is invalid.',
  },
  [ErrorCode.INVALID_CONFIG]: {
    retriable: false,
    message: 'A configuration value is invalid or unknown.',
  },
  [ErrorCode.NOT_CONTROLLER]: {
    retriable: true,
    message: 'This node is not the active controller; send the request to the active controller.',
  },
  [ErrorCode.INVALID_REQUEST]: {
    retriable: false,
    message: 'The request is malformed or inconsistent.',
  },
  [ErrorCode.POLICY_VIOLATION]: {
    retriable: false,
    message: 'The request violates a configured policy.',
  },
  [ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER]: {
    retriable: false,
    message: 'The broker received an out-of-order sequence number from the idempotent producer.',
  },
  [ErrorCode.DUPLICATE_SEQUENCE_NUMBER]: {
    retriable: false,
    message: 'The broker received a duplicate sequence number.',
  },
  [ErrorCode.INVALID_PRODUCER_EPOCH]: {
    retriable: false,
    message: 'The producer epoch is stale: a newer producer with the same id has started.',
  },
  [ErrorCode.KAFKA_STORAGE_ERROR]: {
    retriable: true,
    message:
      'A disk error (for example no space left, or an I/O error) stopped the operation; the log is unchanged.',
  },
  [ErrorCode.UNKNOWN_PRODUCER_ID]: {
    retriable: false,
    message: 'The broker has no state for this producer id.',
  },
  [ErrorCode.GROUP_ID_NOT_FOUND]: { retriable: false, message: 'The group does not exist.' },
  [ErrorCode.FENCED_LEADER_EPOCH]: {
    retriable: true,
    message: 'The leader epoch in the request is older than the current one; refresh metadata.',
  },
  [ErrorCode.UNKNOWN_LEADER_EPOCH]: {
    retriable: true,
    message: 'The leader epoch in the request is newer than this broker knows.',
  },
  [ErrorCode.UNSUPPORTED_COMPRESSION_TYPE]: {
    retriable: false,
    message: 'The compression codec is not supported; use none or gzip.',
  },
  [ErrorCode.STALE_BROKER_EPOCH]: {
    retriable: false,
    message: 'The broker epoch is stale.',
  },
  [ErrorCode.OFFSET_NOT_AVAILABLE]: {
    retriable: true,
    message: 'The leader has not yet caught up to the offset.',
  },
  [ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE]: {
    retriable: true,
    message: 'No replica eligible to lead is alive.',
  },
  [ErrorCode.THROTTLING_QUOTA_EXCEEDED]: {
    retriable: true,
    message:
      'The connection has as many request bytes in progress on this broker as it may; retry after a back-off.',
  },
  [ErrorCode.INVALID_RECORD]: {
    retriable: false,
    message: 'A record in the batch is invalid.',
  },
  [ErrorCode.INCONSISTENT_VOTER_SET]: {
    retriable: false,
    message: "The quorum voter set does not match this node's configuration.",
  },
  [ErrorCode.INVALID_UPDATE_VERSION]: {
    retriable: false,
    message:
      'The change was based on an older version (partition epoch) of the state; refresh and retry.',
  },
  [ErrorCode.SNAPSHOT_NOT_FOUND]: {
    retriable: true,
    message:
      'The requested snapshot no longer exists; fetch the log again to learn the current one.',
  },
  [ErrorCode.UNKNOWN_TOPIC_ID]: {
    retriable: true,
    message: 'No topic has this topic id (it may have been deleted); refresh metadata.',
  },
  [ErrorCode.DUPLICATE_BROKER_REGISTRATION]: {
    retriable: false,
    message:
      'Another live process is registered with this node id; stop it or give this broker another node id.',
  },
  [ErrorCode.INCONSISTENT_CLUSTER_ID]: {
    retriable: false,
    message: 'The cluster id does not match the one stored in the data directory.',
  },
  [ErrorCode.INELIGIBLE_REPLICA]: {
    retriable: false,
    message: 'A replica that is fenced or shutting down cannot join the ISR until it is unfenced.',
  },
  [ErrorCode.LOG_DIRECTORY_LOCKED]: {
    retriable: false,
    message:
      'Another process holds the lock on this data directory; stop it or choose another directory.',
  },
  [ErrorCode.CORRUPT_STORE]: {
    retriable: false,
    message: 'Stored data failed validation and cannot be used as it is.',
  },
  [ErrorCode.ILLEGAL_STATE]: {
    retriable: false,
    message: 'An internal invariant was violated; this is a bug, please report it with the log.',
  },
};

export function errorInfo(code: ErrorCode): ErrorInfo {
  return registry[code] ?? registry[ErrorCode.UNKNOWN_SERVER_ERROR];
}

export function errorName(code: ErrorCode): string {
  return ErrorCode[code] ?? `ERROR_${String(code)}`;
}

/**
 * The error every Weir package throws for conditions a caller may handle. It crosses gRPC as
 * (code, message) and the client turns it back into a WeirError.
 */
export class WeirError extends Error {
  override readonly name = 'WeirError';
  readonly code: ErrorCode;
  readonly retriable: boolean;

  /** `detail` says what exactly went wrong; the registry's message says what to do. */
  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const info = errorInfo(code);
    super(
      detail === undefined
        ? `${errorName(code)}: ${info.message}`
        : `${errorName(code)}: ${detail}`,
      options,
    );
    this.code = code;
    this.retriable = info.retriable;
  }
}

export function isWeirError(error: unknown, code?: ErrorCode): error is WeirError {
  return error instanceof WeirError && (code === undefined || error.code === code);
}

/**
 * An invariant check (TIGER_STYLE): a failure is a bug report carrying the values involved,
 * never a silent return.
 */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new WeirError(
      ErrorCode.ILLEGAL_STATE,
      `assertion failed: ${typeof message === 'string' ? message : message()}`,
    );
  }
}
