// The one schema of `weir server` options. Each option's dotted name (Kafka's where Kafka has
// the setting) gives its config-file key, its flag (`node.id` → `--node-id`) and its
// environment variable (`WEIR_NODE_ID`); load.ts parses every source with it and docs.ts
// renders the reference table in docs/operations.md from it, so the three never drift apart.

import { type QuorumVoter, parseQuorumVoters } from '@weir/raft';

export const PROCESS_ROLES = ['broker', 'controller'] as const;
export type ProcessRole = (typeof PROCESS_ROLES)[number];

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type OptionType = 'int' | 'string' | 'boolean' | 'list' | 'enum';

interface OptionBase {
  /** Dotted lower-case name: the config-file key, and the source of the flag and env names. */
  readonly name: string;
  /** One line for the reference table: what the option does and any rule it must follow. */
  readonly doc: string;
  /** No default: the server refuses to start without a value. */
  readonly required?: boolean;
}

export interface IntOption extends OptionBase {
  readonly type: 'int';
  readonly default?: number;
  readonly min?: number;
  readonly max?: number;
}

export interface StringOption extends OptionBase {
  readonly type: 'string';
  readonly default?: string;
  /** Returns what is wrong with a value, or undefined when it is acceptable. */
  readonly check?: (value: string) => string | undefined;
}

export interface BooleanOption extends OptionBase {
  readonly type: 'boolean';
  readonly default?: boolean;
}

/** Comma-separated; with `values`, every item must be one of them. */
export interface ListOption extends OptionBase {
  readonly type: 'list';
  readonly values?: readonly string[];
  readonly default?: readonly string[];
}

export interface EnumOption extends OptionBase {
  readonly type: 'enum';
  readonly values: readonly string[];
  readonly default?: string;
}

export type ServerOption = IntOption | StringOption | BooleanOption | ListOption | EnumOption;

const MAX_PORT = 65_535;

/** What a cluster id may look like: safe in a properties file, a path and a log line. */
export const CLUSTER_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

function checkClusterId(value: string): string | undefined {
  return CLUSTER_ID_PATTERN.test(value)
    ? undefined
    : 'must be 1-64 characters from [A-Za-z0-9._-] (weir dev and Kafka use a base64 UUID)';
}

function checkHost(value: string): string | undefined {
  return /[\s,@/]/.test(value) ? 'must be a host name or IP address' : undefined;
}

/** The raft package's message names its own flag; keep only the reason and the example. */
function checkQuorumVoters(value: string): string | undefined {
  try {
    parseQuorumVoters(value);
    return undefined;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return `is invalid: ${message.replace(/^INVALID_CONFIG: invalid --quorum-voters "[^"]*": /, '')}`;
  }
}

export const SERVER_OPTIONS = [
  {
    name: 'node.id',
    type: 'int',
    required: true,
    min: 0,
    doc: "This node's id, unique in the cluster; a controller's id must be one of controller.quorum.voters.",
  },
  {
    name: 'process.roles',
    type: 'list',
    values: PROCESS_ROLES,
    default: PROCESS_ROLES,
    doc: 'The roles this node runs: broker, controller, or both (combined mode).',
  },
  {
    name: 'cluster.id',
    type: 'string',
    check: checkClusterId,
    doc: 'Written to meta.properties when the data dir is formatted: required on the first start, and must match the stored id afterwards.',
  },
  {
    name: 'controller.quorum.voters',
    type: 'string',
    required: true,
    check: checkQuorumVoters,
    doc: "The controller quorum as id@host:port,... (each voter's controller listener); the same on every node.",
  },
  {
    name: 'data.dir',
    type: 'string',
    default: './data',
    doc: 'Directory holding meta.properties, the metadata log and the partition logs.',
  },
  {
    name: 'listen.host',
    type: 'string',
    default: '0.0.0.0',
    check: checkHost,
    doc: 'Address the broker, controller and HTTP listeners bind to.',
  },
  {
    name: 'advertised.host',
    type: 'string',
    default: '127.0.0.1',
    check: checkHost,
    doc: 'Host this broker registers with the controller: the one clients and other brokers dial.',
  },
  {
    name: 'broker.port',
    type: 'int',
    default: 9092,
    min: 0,
    max: MAX_PORT,
    doc: 'Port of the broker gRPC listener (clients and replication); 0 picks a free port.',
  },
  {
    name: 'controller.port',
    type: 'int',
    default: 9093,
    min: 0,
    max: MAX_PORT,
    doc: "Port of the controller gRPC listener (Raft and controller RPCs); the port of this node's entry in controller.quorum.voters.",
  },
  {
    name: 'http.port',
    type: 'int',
    default: 8080,
    min: 0,
    max: MAX_PORT,
    doc: 'Port of the HTTP listener serving /healthz, /readyz and /metrics; 0 picks a free port.',
  },
  {
    name: 'rack',
    type: 'string',
    doc: "This broker's rack or zone, for rack-aware replica placement.",
  },
  {
    name: 'broker.session.timeout.ms',
    type: 'int',
    default: 9_000,
    min: 1,
    doc: 'How long the controller waits without a heartbeat from a broker before it fences the broker.',
  },
  {
    name: 'replica.lag.time.max.ms',
    type: 'int',
    default: 30_000,
    min: 1,
    doc: 'How long an in-sync follower may go without catching up to the leader before the leader removes it from the ISR.',
  },
  {
    name: 'replica.high.watermark.checkpoint.interval.ms',
    type: 'int',
    default: 5_000,
    min: 1,
    doc: "How often the broker writes each partition's high watermark to disk (and once at shutdown), so that a restarted leader serves consumers up to it at once.",
  },
  {
    name: 'max.in.flight.bytes.per.connection',
    type: 'int',
    default: 64 * 1024 * 1024,
    min: 1,
    doc: 'The most bytes of Produce requests one client connection may have in progress (appending or waiting for acks=all); a request beyond it is refused with THROTTLING_QUOTA_EXCEEDED, which clients retry after a back-off.',
  },
  {
    name: 'log.retention.check.interval.ms',
    type: 'int',
    default: 300_000,
    min: 1,
    doc: "How often the broker deletes log segments past their topic's retention.ms or retention.bytes.",
  },
  {
    name: 'broker.heartbeat.interval.ms',
    type: 'int',
    default: 2_000,
    min: 1,
    doc: 'How often a broker heartbeats to the active controller; must be below broker.session.timeout.ms.',
  },
  {
    name: 'controller.quorum.tick.ms',
    type: 'int',
    default: 50,
    min: 1,
    doc: 'Length of one Raft tick of the controller quorum.',
  },
  {
    name: 'controller.quorum.election.ticks',
    type: 'int',
    default: 20,
    min: 2,
    doc: 'Ticks without hearing from a leader before a controller starts an election (randomized in [n, 2n)).',
  },
  {
    name: 'controller.quorum.heartbeat.ticks',
    type: 'int',
    default: 2,
    min: 1,
    doc: "Ticks between the quorum leader's heartbeats; must be below controller.quorum.election.ticks.",
  },
  {
    name: 'num.partitions',
    type: 'int',
    default: 1,
    min: 1,
    doc: 'Partition count of a topic created without one.',
  },
  {
    name: 'default.replication.factor',
    type: 'int',
    default: 1,
    min: 1,
    doc: 'Replication factor of a topic created without one.',
  },
  {
    name: 'leader.imbalance.check.interval.ms',
    type: 'int',
    default: 300_000,
    min: 1,
    doc: 'How often the active controller moves partition leadership back to preferred replicas.',
  },
  {
    name: 'controlled.shutdown.timeout.ms',
    type: 'int',
    default: 30_000,
    min: 0,
    doc: 'On SIGTERM, how long a broker waits for the controller to move its leaderships away before it stops anyway.',
  },
  {
    name: 'metadata.snapshot.interval.records',
    type: 'int',
    default: 10_000,
    min: 1,
    doc: 'The controller snapshots its metadata image after this many new metadata log entries.',
  },
  {
    name: 'log.level',
    type: 'enum',
    values: LOG_LEVELS,
    default: 'info',
    doc: 'The least severe level that is logged.',
  },
  {
    name: 'log.format',
    type: 'enum',
    values: LOG_FORMATS,
    default: 'json',
    doc: 'json: one JSON object per line (pino); pretty: one compact line of text per entry, for a terminal.',
  },
] as const satisfies readonly ServerOption[];

type SchemaOption = (typeof SERVER_OPTIONS)[number];

export type ServerOptionName = SchemaOption['name'];

type ParsedValue<O> = O extends { readonly type: 'int' }
  ? number
  : O extends { readonly type: 'boolean' }
    ? boolean
    : O extends { readonly type: 'list'; readonly values: readonly (infer V)[] }
      ? readonly V[]
      : O extends { readonly type: 'list' }
        ? readonly string[]
        : O extends { readonly type: 'enum'; readonly values: readonly (infer V)[] }
          ? V
          : string;

type ResolvedValue<O> = O extends { readonly required: true } | { readonly default: unknown }
  ? ParsedValue<O>
  : ParsedValue<O> | undefined;

/** Every option's parsed value by option name, typed from the schema. */
export type ServerOptionValues = {
  readonly [O in SchemaOption as O['name']]: ResolvedValue<O>;
};

/** The option with this name, or undefined for an unknown name. */
export function findServerOption(name: string): ServerOption | undefined {
  return (SERVER_OPTIONS as readonly ServerOption[]).find((option) => option.name === name);
}

/** `node.id` → `node-id` (used as `--node-id`). */
export function flagName(optionName: string): string {
  return optionName.replaceAll('.', '-');
}

/** `node.id` → `WEIR_NODE_ID`. */
export function envName(optionName: string): string {
  return `WEIR_${optionName.replaceAll('.', '_').toUpperCase()}`;
}

/** The flag and env variable naming the config file; they are not options of the file itself. */
export const CONFIG_FILE_FLAG = 'config';
export const CONFIG_FILE_ENV = 'WEIR_CONFIG';

/** A validated `weir server` configuration. */
export interface ServerConfig {
  readonly nodeId: number;
  readonly processRoles: readonly ProcessRole[];
  /** Undefined when not given: the data dir must then already be formatted. */
  readonly clusterId: string | undefined;
  /** controller.quorum.voters as parseQuorumVoters returns it (IPv6 hosts without brackets). */
  readonly quorumVoters: readonly QuorumVoter[];
  readonly dataDir: string;
  readonly listenHost: string;
  readonly advertisedHost: string;
  readonly brokerPort: number;
  readonly controllerPort: number;
  readonly httpPort: number;
  readonly rack: string | undefined;
  readonly brokerSessionTimeoutMs: number;
  readonly replicaLagTimeMaxMs: number;
  readonly replicaHighWatermarkCheckpointIntervalMs: number;
  readonly maxInFlightBytesPerConnection: number;
  readonly logRetentionCheckIntervalMs: number;
  readonly brokerHeartbeatIntervalMs: number;
  readonly controllerQuorumTickMs: number;
  readonly controllerQuorumElectionTicks: number;
  readonly controllerQuorumHeartbeatTicks: number;
  readonly numPartitions: number;
  readonly defaultReplicationFactor: number;
  readonly leaderImbalanceCheckIntervalMs: number;
  readonly controlledShutdownTimeoutMs: number;
  readonly metadataSnapshotIntervalRecords: number;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
}

/** Maps checked option values to the config; the values must have passed the schema's checks. */
export function toServerConfig(values: ServerOptionValues): ServerConfig {
  return {
    nodeId: values['node.id'],
    processRoles: values['process.roles'],
    clusterId: values['cluster.id'],
    quorumVoters: parseQuorumVoters(values['controller.quorum.voters']),
    dataDir: values['data.dir'],
    listenHost: values['listen.host'],
    advertisedHost: values['advertised.host'],
    brokerPort: values['broker.port'],
    controllerPort: values['controller.port'],
    httpPort: values['http.port'],
    rack: values.rack,
    brokerSessionTimeoutMs: values['broker.session.timeout.ms'],
    replicaLagTimeMaxMs: values['replica.lag.time.max.ms'],
    replicaHighWatermarkCheckpointIntervalMs:
      values['replica.high.watermark.checkpoint.interval.ms'],
    maxInFlightBytesPerConnection: values['max.in.flight.bytes.per.connection'],
    logRetentionCheckIntervalMs: values['log.retention.check.interval.ms'],
    brokerHeartbeatIntervalMs: values['broker.heartbeat.interval.ms'],
    controllerQuorumTickMs: values['controller.quorum.tick.ms'],
    controllerQuorumElectionTicks: values['controller.quorum.election.ticks'],
    controllerQuorumHeartbeatTicks: values['controller.quorum.heartbeat.ticks'],
    numPartitions: values['num.partitions'],
    defaultReplicationFactor: values['default.replication.factor'],
    leaderImbalanceCheckIntervalMs: values['leader.imbalance.check.interval.ms'],
    controlledShutdownTimeoutMs: values['controlled.shutdown.timeout.ms'],
    metadataSnapshotIntervalRecords: values['metadata.snapshot.interval.records'],
    logLevel: values['log.level'],
    logFormat: values['log.format'],
  };
}
