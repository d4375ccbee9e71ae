import { readFileSync } from 'node:fs';
import { ErrorCode, WeirError } from '@weir/protocol';
import { describe, expect, it } from 'vitest';
import {
  TOPIC_CONFIGS,
  type CreateTopicRequest,
  collidesWith,
  validateCreateTopic,
  validateTopicConfig,
} from './topic-validation.js';

function expectThrowCode(run: () => unknown, code: ErrorCode, message: RegExp): void {
  expect(run).toThrow(message);
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).code).toBe(code);
  }
}

const valid: CreateTopicRequest = {
  name: 'orders',
  partitions: 12,
  replicationFactor: 3,
  configs: {},
};

function create(overrides: Partial<CreateTopicRequest>, liveBrokers = 3): () => void {
  return () => validateCreateTopic({ ...valid, ...overrides }, liveBrokers);
}

describe('validateCreateTopic: names', () => {
  it('accepts Kafka-legal names up to 249 characters', () => {
    for (const name of ['orders', 'a.b_c-D9', 'x'.repeat(249), '...']) {
      expect(create({ name })).not.toThrow();
    }
  });

  it('rejects an empty name', () => {
    expectThrowCode(create({ name: '' }), ErrorCode.INVALID_TOPIC_EXCEPTION, /is empty/);
  });

  it("rejects '.' and '..'", () => {
    expectThrowCode(create({ name: '.' }), ErrorCode.INVALID_TOPIC_EXCEPTION, /cannot be '\.'/);
    expectThrowCode(create({ name: '..' }), ErrorCode.INVALID_TOPIC_EXCEPTION, /cannot be '\.\.'/);
  });

  it('rejects names longer than 249 characters, saying how long', () => {
    expectThrowCode(
      create({ name: 'x'.repeat(250) }),
      ErrorCode.INVALID_TOPIC_EXCEPTION,
      /250 characters long; the limit is 249/,
    );
  });

  it('rejects illegal characters, naming them', () => {
    expectThrowCode(
      create({ name: 'my topic/1' }),
      ErrorCode.INVALID_TOPIC_EXCEPTION,
      /characters other than \[a-zA-Z0-9._-\]: " \/"/,
    );
  });
});

describe('collidesWith', () => {
  it("rejects a name that differs from an existing one only by '.' and '_'", () => {
    expectThrowCode(
      () => collidesWith('metrics.cpu', ['orders', 'metrics_cpu']),
      ErrorCode.INVALID_TOPIC_EXCEPTION,
      /collides with existing topic 'metrics_cpu'/,
    );
  });

  it('lets unrelated names and the identical name pass (duplicates are checked elsewhere)', () => {
    expect(() => collidesWith('metrics.cpu', ['metrics.cpu', 'metrics-cpu'])).not.toThrow();
  });
});

describe('validateCreateTopic: partitions and replication factor', () => {
  it('rejects fewer than one partition', () => {
    expectThrowCode(create({ partitions: 0 }), ErrorCode.INVALID_PARTITIONS, /at least 1, got 0/);
    expectThrowCode(create({ partitions: 1.5 }), ErrorCode.INVALID_PARTITIONS, /got 1\.5/);
  });

  it('rejects a replication factor below 1 or above the live brokers', () => {
    expectThrowCode(
      create({ replicationFactor: 0 }),
      ErrorCode.INVALID_REPLICATION_FACTOR,
      /at least 1, got 0/,
    );
    expectThrowCode(
      create({ replicationFactor: 3 }, 2),
      ErrorCode.INVALID_REPLICATION_FACTOR,
      /replication factor 3 is larger than the 2 live brokers/,
    );
  });
});

describe('validateCreateTopic: configs', () => {
  it('accepts known configs with valid values', () => {
    const configs = {
      'cleanup.policy': 'compact',
      'retention.ms': '-1',
      'retention.bytes': '1073741824',
      'segment.bytes': '1048576',
      'segment.ms': '3600000',
      'max.message.bytes': '2097152',
      'min.insync.replicas': '2',
      'unclean.leader.election.enable': 'true',
      'compression.type': 'zstd',
      'message.timestamp.type': 'LogAppendTime',
    };
    expect(create({ configs })).not.toThrow();
  });

  it('accepts every default of the schema', () => {
    for (const [name, def] of Object.entries(TOPIC_CONFIGS)) {
      expect(() => validateTopicConfig(name, def.default)).not.toThrow();
    }
  });

  it('rejects an unknown config, listing the known ones', () => {
    expectThrowCode(
      create({ configs: { 'retention.hours': '1' } }),
      ErrorCode.INVALID_CONFIG,
      /unknown topic config 'retention.hours'; known configs are cleanup.policy, retention.ms/,
    );
  });

  it('rejects a bad enum value, listing the allowed values', () => {
    expectThrowCode(
      create({ configs: { 'compression.type': 'brotli' } }),
      ErrorCode.INVALID_CONFIG,
      /'brotli' for compression.type: must be one of none, gzip, snappy, lz4, zstd, producer/,
    );
    expectThrowCode(
      create({ configs: { 'cleanup.policy': 'forever' } }),
      ErrorCode.INVALID_CONFIG,
      /cleanup.policy: must be one of delete, compact/,
    );
  });

  it('rejects values of the wrong type or out of range', () => {
    expectThrowCode(
      create({ configs: { 'retention.ms': '7d' } }),
      ErrorCode.INVALID_CONFIG,
      /'7d' for retention.ms: must be a 64-bit integer/,
    );
    expectThrowCode(
      create({ configs: { 'segment.bytes': '4294967296' } }),
      ErrorCode.INVALID_CONFIG,
      /segment.bytes: must be a 32-bit integer \(between -2147483648 and 2147483647\)/,
    );
    expectThrowCode(
      create({ configs: { 'retention.bytes': '-2' } }),
      ErrorCode.INVALID_CONFIG,
      /retention.bytes: must be at least -1/,
    );
    expectThrowCode(
      create({ configs: { 'unclean.leader.election.enable': 'yes' } }),
      ErrorCode.INVALID_CONFIG,
      /unclean.leader.election.enable: must be 'true' or 'false'/,
    );
  });

  it('rejects min.insync.replicas above the replication factor', () => {
    expectThrowCode(
      create({ replicationFactor: 2, configs: { 'min.insync.replicas': '3' } }),
      ErrorCode.INVALID_CONFIG,
      /min.insync.replicas 3 is larger than the replication factor 2/,
    );
  });
});

describe('docs/controller.md', () => {
  it('lists every topic config with the type and default of TOPIC_CONFIGS', () => {
    const doc = readFileSync(new URL('../../../docs/controller.md', import.meta.url), 'utf8');
    const table = doc.slice(doc.indexOf('## Topic configs'));
    const rows = table.split('\n').filter((line) => /^\| `[a-z.]+` /.test(line));
    const documented = rows.map((row) => row.split('|').map((cell) => cell.trim()));
    expect(documented.map((cells) => cells[1])).toEqual(
      Object.keys(TOPIC_CONFIGS).map((name) => `\`${name}\``),
    );
    for (const cells of documented) {
      const def = TOPIC_CONFIGS[cells[1]!.slice(1, -1) as keyof typeof TOPIC_CONFIGS];
      expect([cells[2], cells[3]]).toEqual([def.type, `\`${def.default}\``]);
    }
  });
});
