// loadServerConfig: the precedence of its sources and a message for every way a value can be
// wrong, each naming the option and where the value came from.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ErrorCode, WeirError } from '@weir/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  SERVER_OPTIONS,
  type ServerConfigSources,
  envName,
  flagName,
  loadServerConfig,
  serverFlagOptions,
  serverFlagValues,
} from '../src/index.js';

const REQUIRED = { 'node.id': '1', 'controller.quorum.voters': '1@127.0.0.1:9093' };

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-config-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function configFile(text: string): string {
  const path = join(dir, 'server.properties');
  writeFileSync(path, text);
  return path;
}

/** The INVALID_CONFIG message loading `sources` throws. */
function failure(sources: ServerConfigSources): string {
  try {
    loadServerConfig(sources);
  } catch (error) {
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).code).toBe(ErrorCode.INVALID_CONFIG);
    return (error as WeirError).message;
  }
  throw new Error('expected loadServerConfig to throw');
}

describe('names derived from the option name', () => {
  it('gives a flag with dashes and a WEIR_ variable with underscores', () => {
    expect(flagName('broker.session.timeout.ms')).toBe('broker-session-timeout-ms');
    expect(envName('broker.session.timeout.ms')).toBe('WEIR_BROKER_SESSION_TIMEOUT_MS');
  });

  it('keeps every spelling unique across the schema', () => {
    const names = SERVER_OPTIONS.map((option) => option.name);
    expect(new Set(names.map(flagName)).size).toBe(names.length);
    expect(new Set(names.map(envName)).size).toBe(names.length);
  });
});

describe('loadServerConfig', () => {
  it('fills in the defaults', () => {
    const config = loadServerConfig({ flags: REQUIRED });
    expect(config).toMatchObject({
      nodeId: 1,
      processRoles: ['broker', 'controller'],
      clusterId: undefined,
      dataDir: './data',
      listenHost: '0.0.0.0',
      advertisedHost: '127.0.0.1',
      brokerPort: 9092,
      controllerPort: 9093,
      httpPort: 8080,
      rack: undefined,
      brokerSessionTimeoutMs: 9000,
      brokerHeartbeatIntervalMs: 2000,
      controllerQuorumTickMs: 50,
      controllerQuorumElectionTicks: 20,
      controllerQuorumHeartbeatTicks: 2,
      numPartitions: 1,
      defaultReplicationFactor: 1,
      leaderImbalanceCheckIntervalMs: 300_000,
      controlledShutdownTimeoutMs: 30_000,
      metadataSnapshotIntervalRecords: 10_000,
      logLevel: 'info',
      logFormat: 'json',
    });
    expect(config.quorumVoters).toEqual([{ id: 1, host: '127.0.0.1', port: 9093 }]);
  });

  it('takes flags over env over the config file over the defaults', () => {
    const file = configFile(
      [
        '# a comment',
        '',
        'node.id=1',
        'controller.quorum.voters=1@127.0.0.1:9093',
        'broker.port=1001',
        'controller.port=1002',
        'http.port=1003',
      ].join('\n'),
    );
    const config = loadServerConfig({
      configFile: file,
      env: { WEIR_CONTROLLER_PORT: '2002', WEIR_HTTP_PORT: '2003' },
      flags: { 'http.port': '3003' },
    });
    expect(config.brokerPort).toBe(1001);
    expect(config.controllerPort).toBe(2002);
    expect(config.httpPort).toBe(3003);
    expect(config.numPartitions).toBe(1);
  });

  it('treats empty values as not set', () => {
    const file = configFile('rack=a\nbroker.port=\n');
    const config = loadServerConfig({
      configFile: file,
      env: { WEIR_RACK: '' },
      flags: { ...REQUIRED, 'http.port': undefined },
    });
    expect(config.rack).toBe('a');
    expect(config.brokerPort).toBe(9092);
    expect(config.httpPort).toBe(8080);
  });

  it('reads every typed option from WEIR_ variables and ignores unknown ones', () => {
    const config = loadServerConfig({
      env: {
        WEIR_NODE_ID: '3',
        WEIR_PROCESS_ROLES: ' controller , broker ',
        WEIR_CLUSTER_ID: 'abc_DEF-123',
        WEIR_CONTROLLER_QUORUM_VOTERS: '1@h1:9093,2@h2:9093,3@[::1]:9093',
        WEIR_LOG_LEVEL: 'debug',
        WEIR_LOG_FORMAT: 'pretty',
        WEIR_SOMETHING_ELSE: 'x',
        PATH: '/bin',
      },
    });
    expect(config.nodeId).toBe(3);
    expect(config.processRoles).toEqual(['controller', 'broker']);
    expect(config.clusterId).toBe('abc_DEF-123');
    expect(config.quorumVoters).toEqual([
      { id: 1, host: 'h1', port: 9093 },
      { id: 2, host: 'h2', port: 9093 },
      { id: 3, host: '::1', port: 9093 },
    ]);
    expect(config.logLevel).toBe('debug');
    expect(config.logFormat).toBe('pretty');
  });

  it('accepts a broker-only node outside the voters', () => {
    const config = loadServerConfig({
      flags: { ...REQUIRED, 'node.id': '7', 'process.roles': 'broker' },
    });
    expect(config.processRoles).toEqual(['broker']);
  });

  it('takes flags from parseArgs through serverFlagOptions and serverFlagValues', () => {
    const { values } = parseArgs({
      args: ['--node-id', '2', '--controller-quorum-voters=2@a:9093', '--config', 'x.properties'],
      options: serverFlagOptions(),
    });
    expect(values.config).toBe('x.properties');
    const flags = serverFlagValues(values);
    expect(flags).toEqual({ 'node.id': '2', 'controller.quorum.voters': '2@a:9093' });
    expect(loadServerConfig({ flags }).nodeId).toBe(2);
  });
});

describe('loadServerConfig errors', () => {
  it('names the env variable, its value and the rule for a bad integer', () => {
    expect(failure({ flags: REQUIRED, env: { WEIR_BROKER_PORT: 'abc' } })).toBe(
      'INVALID_CONFIG: WEIR_BROKER_PORT=abc: broker.port must be an integer',
    );
  });

  it('names the flag for a bad integer', () => {
    expect(failure({ flags: { ...REQUIRED, 'http.port': '1.5' } })).toContain(
      '--http-port=1.5: http.port must be an integer',
    );
    expect(failure({ flags: { ...REQUIRED, 'http.port': '99999' } })).toContain(
      '--http-port=99999: http.port must be between 0 and 65535',
    );
    expect(failure({ flags: { ...REQUIRED, 'node.id': '-1' } })).toContain(
      '--node-id=-1: node.id must be at least 0',
    );
    expect(failure({ flags: { ...REQUIRED, 'num.partitions': '1e3' } })).toContain(
      'num.partitions must be an integer',
    );
  });

  it('names the file and line for a bad value in the config file', () => {
    const file = configFile('\nbroker.session.timeout.ms=soon\n');
    expect(failure({ configFile: file, flags: REQUIRED })).toContain(
      `${file}:2: broker.session.timeout.ms=soon: broker.session.timeout.ms must be an integer`,
    );
  });

  it('rejects an unknown key in the config file, naming it and the file', () => {
    const file = configFile('node.id=1\nbroker_port=9092\nfoo=bar\n');
    const message = failure({ configFile: file, flags: REQUIRED });
    expect(message).toContain(`${file}:2: unknown option broker_port (did you mean broker.port?)`);
    expect(message).toContain(`${file}:3: unknown option foo`);
  });

  it('rejects a malformed config file', () => {
    const file = configFile('node.id=1\nnode.id=2\n');
    expect(failure({ configFile: file, flags: REQUIRED })).toContain(
      `${file}:2: node.id is already set on line 1`,
    );
    const other = configFile('just words\n');
    expect(failure({ configFile: other, flags: REQUIRED })).toContain(
      `${other}:1: expected key=value`,
    );
  });

  it('names a config file it cannot read', () => {
    const missing = join(dir, 'missing.properties');
    expect(failure({ configFile: missing, flags: REQUIRED })).toContain(
      `cannot read config file ${missing}`,
    );
  });

  it('rejects an unknown flag key', () => {
    expect(failure({ flags: { ...REQUIRED, 'node-id': '1' } })).toContain(
      'unknown option node-id given as a flag (did you mean node.id?)',
    );
  });

  it('says how to give a missing required option', () => {
    expect(failure({})).toBe(
      'INVALID_CONFIG: 2 configuration problems: ' +
        'node.id is required: pass --node-id, set WEIR_NODE_ID or add node.id=... to the config file; ' +
        'controller.quorum.voters is required: pass --controller-quorum-voters, set WEIR_CONTROLLER_QUORUM_VOTERS or add controller.quorum.voters=... to the config file',
    );
  });

  it('requires the heartbeat interval to be below the session timeout', () => {
    expect(
      failure({
        flags: { ...REQUIRED, 'broker.heartbeat.interval.ms': '9000' },
      }),
    ).toBe(
      'INVALID_CONFIG: broker.heartbeat.interval.ms (9000, from --broker-heartbeat-interval-ms) ' +
        'must be below broker.session.timeout.ms (9000, the default): ' +
        'lower --broker-heartbeat-interval-ms or raise --broker-session-timeout-ms',
    );
    const file = configFile('broker.session.timeout.ms=1000\n');
    expect(failure({ configFile: file, flags: REQUIRED })).toContain(
      `broker.session.timeout.ms (1000, from ${file}:1)`,
    );
  });

  it('requires quorum heartbeat ticks below election ticks', () => {
    expect(
      failure({
        flags: REQUIRED,
        env: { WEIR_CONTROLLER_QUORUM_HEARTBEAT_TICKS: '20' },
      }),
    ).toContain(
      'controller.quorum.heartbeat.ticks (20, from WEIR_CONTROLLER_QUORUM_HEARTBEAT_TICKS) must be below controller.quorum.election.ticks (20, the default)',
    );
  });

  it('rejects bad enum, list and string values', () => {
    expect(failure({ flags: { ...REQUIRED, 'log.level': 'verbose' } })).toContain(
      '--log-level=verbose: log.level must be one of trace, debug, info, warn, error',
    );
    expect(failure({ flags: { ...REQUIRED, 'process.roles': 'broker,zookeeper' } })).toContain(
      'process.roles has zookeeper, which is not one of broker, controller',
    );
    expect(failure({ flags: { ...REQUIRED, 'process.roles': 'broker,broker' } })).toContain(
      'process.roles lists broker twice',
    );
    expect(failure({ flags: { ...REQUIRED, 'process.roles': ' , ' } })).toContain(
      'process.roles must list at least one item of broker, controller',
    );
    expect(failure({ flags: { ...REQUIRED, 'cluster.id': 'a b' } })).toContain(
      '--cluster-id=a b: cluster.id must be 1-64 characters',
    );
    expect(failure({ flags: { ...REQUIRED, 'advertised.host': 'a,b' } })).toContain(
      'advertised.host must be a host name or IP address',
    );
  });

  it('explains a malformed voter list in terms of controller.quorum.voters', () => {
    expect(
      failure({ flags: { 'node.id': '1' }, env: { WEIR_CONTROLLER_QUORUM_VOTERS: '1@a' } }),
    ).toBe(
      'INVALID_CONFIG: WEIR_CONTROLLER_QUORUM_VOTERS=1@a: controller.quorum.voters is invalid: ' +
        '"1@a" is not id@host:port; expected id@host:port,... such as 1@10.0.0.1:9093,2@10.0.0.2:9093,3@10.0.0.3:9093',
    );
  });

  it('requires a controller to be a voter and a broker-only node not to be one', () => {
    expect(failure({ flags: { ...REQUIRED, 'node.id': '4' } })).toContain(
      'node.id 4 runs the controller role but is not one of controller.quorum.voters (1@127.0.0.1:9093, from --controller-quorum-voters): add 4@host:port to the voters, or set process.roles=broker',
    );
    expect(failure({ flags: { ...REQUIRED, 'process.roles': 'broker' } })).toContain(
      'node.id 1 is one of controller.quorum.voters (1@127.0.0.1:9093, from --controller-quorum-voters) but process.roles (broker) leaves out controller',
    );
  });
});
