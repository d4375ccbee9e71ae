// Validation of CreateTopics requests and topic configs, before any record is written. Each
// rule throws the specific WeirError Kafka would return, with a message saying what to change.
// TOPIC_CONFIGS is the one schema for topic configs: validation, defaults and docs come from it.

import { ErrorCode, WeirError } from '@weir/protocol';

/** Kafka's `Topic.MAX_NAME_LENGTH` and legal characters (`Topic.validate`). */
export const MAX_TOPIC_NAME_LENGTH = 249;
const LEGAL_TOPIC_NAME = /^[a-zA-Z0-9._-]+$/;

const INT_MAX = 2n ** 31n - 1n;
const INT_MIN = -(2n ** 31n);
const LONG_MAX = 2n ** 63n - 1n;
const LONG_MIN = -(2n ** 63n);

export type TopicConfigType = 'long' | 'int' | 'boolean' | 'string' | 'enum';

export interface TopicConfigDef {
  readonly type: TopicConfigType;
  /** The value a topic has when the config is not set, as Kafka writes it. */
  readonly default: string;
  /** The legal values of an enum config. */
  readonly values?: readonly string[];
  /** Checks a value that already has the right type; returns what is wrong, or undefined. */
  readonly validator?: (value: string) => string | undefined;
  readonly doc: string;
}

function atLeast(min: bigint): (value: string) => string | undefined {
  return (value) => (BigInt(value) < min ? `must be at least ${min}` : undefined);
}

/** Topic configs Weir knows, with Kafka's names, defaults and lower bounds. */
export const TOPIC_CONFIGS = {
  'cleanup.policy': {
    type: 'enum',
    default: 'delete',
    values: ['delete', 'compact'],
    doc: 'Whether old segments are deleted (by retention) or compacted (latest value per key).',
  },
  'retention.ms': {
    type: 'long',
    default: '604800000',
    validator: atLeast(-1n),
    doc: 'How long a segment is kept before deletion, in milliseconds; -1 keeps it forever.',
  },
  'retention.bytes': {
    type: 'long',
    default: '-1',
    validator: atLeast(-1n),
    doc: 'The largest size a partition log may grow to before old segments are deleted; -1 means no limit.',
  },
  'segment.bytes': {
    type: 'int',
    default: '1073741824',
    validator: atLeast(14n),
    doc: 'The size at which the active segment is rolled, in bytes.',
  },
  'segment.ms': {
    type: 'long',
    default: '604800000',
    validator: atLeast(1n),
    doc: 'The age at which the active segment is rolled even if not full, in milliseconds.',
  },
  'max.message.bytes': {
    type: 'int',
    default: '1048588',
    validator: atLeast(0n),
    doc: 'The largest record batch the topic accepts, in bytes.',
  },
  'min.insync.replicas': {
    type: 'int',
    default: '1',
    validator: atLeast(1n),
    doc: 'The fewest in-sync replicas an acks=all write needs; at most the replication factor.',
  },
  'unclean.leader.election.enable': {
    type: 'boolean',
    default: 'false',
    doc: 'Whether a replica outside the ISR may become leader when no ISR member is live (may lose data).',
  },
  'compression.type': {
    type: 'enum',
    default: 'producer',
    values: ['none', 'gzip', 'snappy', 'lz4', 'zstd', 'producer'],
    doc: "The compression stored batches use; 'producer' keeps the producer's choice.",
  },
  'message.timestamp.type': {
    type: 'enum',
    default: 'CreateTime',
    values: ['CreateTime', 'LogAppendTime'],
    doc: "Whether a record's timestamp is the producer's (CreateTime) or the broker's append time.",
  },
} as const satisfies Record<string, TopicConfigDef>;

export type TopicConfigName = keyof typeof TOPIC_CONFIGS;

export interface CreateTopicRequest {
  readonly name: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly configs: Readonly<Record<string, string>>;
}

/** Throws the WeirError Kafka would answer CreateTopics with for the first rule broken. */
export function validateCreateTopic(request: CreateTopicRequest, liveBrokerCount: number): void {
  validateTopicName(request.name);
  validatePartitionCount(request.partitions);
  validateReplicationFactor(request.replicationFactor, liveBrokerCount);
  validateTopicConfigs(request.configs, request.replicationFactor);
}

/** Kafka's `Topic.validate`: 1-249 characters from [a-zA-Z0-9._-], and not `.` or `..`. */
export function validateTopicName(name: string): void {
  if (name.length === 0) {
    throw new WeirError(ErrorCode.INVALID_TOPIC_EXCEPTION, 'the topic name is empty');
  }
  if (name === '.' || name === '..') {
    throw new WeirError(ErrorCode.INVALID_TOPIC_EXCEPTION, `the topic name cannot be '${name}'`);
  }
  if (name.length > MAX_TOPIC_NAME_LENGTH) {
    throw new WeirError(
      ErrorCode.INVALID_TOPIC_EXCEPTION,
      `the topic name is ${name.length} characters long; the limit is ${MAX_TOPIC_NAME_LENGTH}`,
    );
  }
  if (!LEGAL_TOPIC_NAME.test(name)) {
    const illegal = [...new Set(name.replace(/[a-zA-Z0-9._-]/g, ''))].join('');
    throw new WeirError(
      ErrorCode.INVALID_TOPIC_EXCEPTION,
      `the topic name '${name}' contains characters other than [a-zA-Z0-9._-]: ${JSON.stringify(illegal)}`,
    );
  }
}

/**
 * Kafka refuses a topic whose name differs from an existing one only by `.` versus `_`,
 * because both map to the same metric names (`Topic.hasCollision`).
 */
export function collidesWith(name: string, existingNames: Iterable<string>): void {
  const unified = unifyCollisionChars(name);
  for (const existing of existingNames) {
    if (existing !== name && unifyCollisionChars(existing) === unified) {
      throw new WeirError(
        ErrorCode.INVALID_TOPIC_EXCEPTION,
        `topic '${name}' collides with existing topic '${existing}': names that differ only by '.' and '_' are not allowed`,
      );
    }
  }
}

function unifyCollisionChars(name: string): string {
  return name.replaceAll('.', '_');
}

export function validatePartitionCount(partitions: number): void {
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new WeirError(
      ErrorCode.INVALID_PARTITIONS,
      `the number of partitions must be an integer of at least 1, got ${partitions}`,
    );
  }
}

export function validateReplicationFactor(
  replicationFactor: number,
  liveBrokerCount: number,
): void {
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1) {
    throw new WeirError(
      ErrorCode.INVALID_REPLICATION_FACTOR,
      `the replication factor must be an integer of at least 1, got ${replicationFactor}`,
    );
  }
  if (replicationFactor > liveBrokerCount) {
    throw new WeirError(
      ErrorCode.INVALID_REPLICATION_FACTOR,
      `replication factor ${replicationFactor} is larger than the ${liveBrokerCount} live brokers available`,
    );
  }
}

/** Known configs only, each value of its type and in range; min.insync.replicas ≤ RF. */
export function validateTopicConfigs(
  configs: Readonly<Record<string, string>>,
  replicationFactor: number,
): void {
  for (const [name, value] of Object.entries(configs)) {
    validateTopicConfig(name, value);
  }
  const minInsync = configs['min.insync.replicas'];
  if (minInsync !== undefined && Number(minInsync) > replicationFactor) {
    throw new WeirError(
      ErrorCode.INVALID_CONFIG,
      `min.insync.replicas ${minInsync} is larger than the replication factor ${replicationFactor}; acks=all writes could never succeed`,
    );
  }
}

/** Throws INVALID_CONFIG for an unknown config or a value that does not fit its schema. */
export function validateTopicConfig(name: string, value: string): void {
  const def: TopicConfigDef = TOPIC_CONFIGS[validateTopicConfigName(name)];
  const problem = typeProblem(def, value) ?? def.validator?.(value);
  if (problem !== undefined) {
    throw new WeirError(
      ErrorCode.INVALID_CONFIG,
      `invalid value '${value}' for ${name}: ${problem}`,
    );
  }
}

/** Throws INVALID_CONFIG for a name that is not a topic config (a delete checks only this). */
export function validateTopicConfigName(name: string): TopicConfigName {
  if (!isTopicConfigName(name)) {
    throw new WeirError(
      ErrorCode.INVALID_CONFIG,
      `unknown topic config '${name}'; known configs are ${Object.keys(TOPIC_CONFIGS).join(', ')}`,
    );
  }
  return name;
}

export function isTopicConfigName(name: string): name is TopicConfigName {
  return Object.hasOwn(TOPIC_CONFIGS, name);
}

function typeProblem(def: TopicConfigDef, value: string): string | undefined {
  switch (def.type) {
    case 'int':
      return integerProblem(value, INT_MIN, INT_MAX, 'a 32-bit integer');
    case 'long':
      return integerProblem(value, LONG_MIN, LONG_MAX, 'a 64-bit integer');
    case 'boolean':
      return value === 'true' || value === 'false' ? undefined : "must be 'true' or 'false'";
    case 'enum':
      return def.values?.includes(value) === true
        ? undefined
        : `must be one of ${(def.values ?? []).join(', ')}`;
    case 'string':
      return undefined;
  }
}

function integerProblem(value: string, min: bigint, max: bigint, what: string): string | undefined {
  if (!/^-?\d+$/.test(value)) return `must be ${what}`;
  const parsed = BigInt(value);
  return parsed < min || parsed > max ? `must be ${what} (between ${min} and ${max})` : undefined;
}
