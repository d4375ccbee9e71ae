// Resolves the `weir server` configuration from its sources, lowest precedence first: the
// schema's defaults, the config file (properties format), WEIR_* environment variables, flags.
// Every message names the option and where the offending value came from, and says what to
// change (KafkaJS-style validation at construction).

import { readFileSync } from 'node:fs';
import type { ParseArgsConfig } from 'node:util';
import { ErrorCode, WeirError } from '@weir/protocol';
import { parseQuorumVoters } from '@weir/raft';
import { parseProperties } from './properties.js';
import {
  CONFIG_FILE_FLAG,
  type ServerConfig,
  type ServerOption,
  type ServerOptionValues,
  SERVER_OPTIONS,
  envName,
  findServerOption,
  flagName,
  toServerConfig,
} from './schema.js';

export interface ServerConfigSources {
  /** Flag values keyed by option name (`'node.id'`, not `'node-id'`); see `serverFlagValues`. */
  readonly flags?: Readonly<Record<string, string | undefined>>;
  /** Usually `process.env`; only the schema's WEIR_* variables are read, others are ignored. */
  readonly env?: NodeJS.ProcessEnv;
  /** Path of a properties file (from `--config` or WEIR_CONFIG). */
  readonly configFile?: string;
}

type SettingSource =
  | { readonly kind: 'default' }
  | { readonly kind: 'file'; readonly path: string; readonly line: number }
  | { readonly kind: 'env' }
  | { readonly kind: 'flag' };

/** A value as one source gave it, before parsing. */
interface Setting {
  readonly text: string;
  readonly source: SettingSource;
}

/** A parsed value and where it came from, for messages about combinations of options. */
interface Resolved {
  readonly value: unknown;
  readonly source: SettingSource;
}

class ConfigProblems {
  readonly messages: string[] = [];

  add(message: string): void {
    this.messages.push(message);
  }

  throwIfAny(): void {
    if (this.messages.length === 1) throw new WeirError(ErrorCode.INVALID_CONFIG, this.messages[0]);
    if (this.messages.length > 1) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `${this.messages.length} configuration problems: ${this.messages.join('; ')}`,
      );
    }
  }
}

/**
 * Loads and validates the configuration. Throws WeirError INVALID_CONFIG listing every problem
 * found (an unreadable or malformed file, an unknown key, a bad or missing value, or options
 * that contradict each other).
 */
export function loadServerConfig(sources: ServerConfigSources): ServerConfig {
  const problems = new ConfigProblems();
  const layers: ReadonlyMap<string, Setting>[] = [
    sources.configFile === undefined ? new Map() : readConfigFile(sources.configFile, problems),
    envSettings(sources.env ?? {}),
    flagSettings(sources.flags ?? {}, problems),
  ];
  const resolved = new Map<string, Resolved>();
  for (const option of SERVER_OPTIONS as readonly ServerOption[]) {
    const setting = layers.reduce<Setting | undefined>(
      (winner, layer) => layer.get(option.name) ?? winner,
      undefined,
    );
    const value = resolveOption(option, setting, problems);
    if (value !== undefined) resolved.set(option.name, value);
  }
  problems.throwIfAny();
  checkCombinations(resolved, problems);
  problems.throwIfAny();
  const values = Object.fromEntries(
    [...resolved].map(([name, { value }]) => [name, value]),
  ) as unknown as ServerOptionValues;
  return toServerConfig(values);
}

/** Options for node:util `parseArgs`: one string flag per option, plus `--config`. */
export function serverFlagOptions(): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = {
    [CONFIG_FILE_FLAG]: { type: 'string' },
  };
  for (const option of SERVER_OPTIONS as readonly ServerOption[]) {
    options[flagName(option.name)] = { type: option.type === 'boolean' ? 'boolean' : 'string' };
  }
  return options;
}

/** Turns `parseArgs(...).values` (keyed by flag) into `sources.flags` (keyed by option name). */
export function serverFlagValues(
  values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>,
): Record<string, string | undefined> {
  const flags: Record<string, string | undefined> = {};
  for (const option of SERVER_OPTIONS as readonly ServerOption[]) {
    const value = values[flagName(option.name)];
    if (value !== undefined)
      flags[option.name] = String(Array.isArray(value) ? value.at(-1) : value);
  }
  return flags;
}

function readConfigFile(path: string, problems: ConfigProblems): Map<string, Setting> {
  const settings = new Map<string, Setting>();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    problems.add(`cannot read config file ${path}: ${reason}`);
    return settings;
  }
  let entries;
  try {
    entries = parseProperties(text, path);
  } catch (error) {
    problems.add(`config file ${withoutCode(error)}`);
    return settings;
  }
  for (const { key, value, line } of entries) {
    if (findServerOption(key) === undefined) {
      problems.add(`${path}:${line}: unknown option ${key}${suggestion(key)}`);
    } else if (value !== '') {
      settings.set(key, { text: value, source: { kind: 'file', path, line } });
    }
  }
  return settings;
}

function envSettings(env: NodeJS.ProcessEnv): Map<string, Setting> {
  const settings = new Map<string, Setting>();
  for (const option of SERVER_OPTIONS) {
    const text = env[envName(option.name)]?.trim();
    // An empty variable counts as unset, as `WEIR_RACK=${RACK}` with RACK unset gives.
    if (text !== undefined && text !== '') {
      settings.set(option.name, { text, source: { kind: 'env' } });
    }
  }
  return settings;
}

function flagSettings(
  flags: Readonly<Record<string, string | undefined>>,
  problems: ConfigProblems,
): Map<string, Setting> {
  const settings = new Map<string, Setting>();
  for (const [name, value] of Object.entries(flags)) {
    if (findServerOption(name) === undefined) {
      problems.add(`unknown option ${name} given as a flag${suggestion(name)}`);
    } else if (value !== undefined && value.trim() !== '') {
      settings.set(name, { text: value.trim(), source: { kind: 'flag' } });
    }
  }
  return settings;
}

function resolveOption(
  option: ServerOption,
  setting: Setting | undefined,
  problems: ConfigProblems,
): Resolved | undefined {
  if (setting === undefined) {
    if (option.default !== undefined) return { value: option.default, source: { kind: 'default' } };
    if (option.required === true) {
      problems.add(
        `${option.name} is required: pass --${flagName(option.name)}, set ${envName(option.name)} or add ${option.name}=... to the config file`,
      );
    }
    return undefined;
  }
  const parsed = parseValue(option, setting.text);
  if (typeof parsed === 'object' && parsed !== null && 'problem' in parsed) {
    problems.add(`${describeSetting(option.name, setting)}: ${option.name} ${parsed.problem}`);
    return undefined;
  }
  return { value: parsed, source: setting.source };
}

type Parsed = number | string | boolean | readonly string[] | { readonly problem: string };

function parseValue(option: ServerOption, text: string): Parsed {
  switch (option.type) {
    case 'int':
      return parseInteger(option.min, option.max, text);
    case 'string': {
      const problem = option.check?.(text);
      return problem === undefined ? text : { problem };
    }
    case 'boolean':
      if (/^true$/i.test(text)) return true;
      if (/^false$/i.test(text)) return false;
      return { problem: 'must be true or false' };
    case 'list':
      return parseList(option.values, text);
    case 'enum':
      return option.values.includes(text)
        ? text
        : { problem: `must be one of ${option.values.join(', ')}` };
  }
}

function parseInteger(min: number | undefined, max: number | undefined, text: string): Parsed {
  const value = /^-?[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value)) return { problem: 'must be an integer' };
  if (min !== undefined && max !== undefined && (value < min || value > max)) {
    return { problem: `must be between ${min} and ${max}` };
  }
  if (min !== undefined && value < min) return { problem: `must be at least ${min}` };
  if (max !== undefined && value > max) return { problem: `must be at most ${max}` };
  return value;
}

function parseList(allowed: readonly string[] | undefined, text: string): Parsed {
  const items = text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  const expected = allowed === undefined ? '' : ` of ${allowed.join(', ')}`;
  if (items.length === 0) return { problem: `must list at least one item${expected}` };
  const unknown = items.find((item) => allowed !== undefined && !allowed.includes(item));
  if (unknown !== undefined) return { problem: `has ${unknown}, which is not one${expected}` };
  const repeated = items.find((item, index) => items.indexOf(item) !== index);
  if (repeated !== undefined) return { problem: `lists ${repeated} twice` };
  return items;
}

/** Rules that involve two options; each message says which values to change. */
function checkCombinations(resolved: ReadonlyMap<string, Resolved>, problems: ConfigProblems) {
  const get = (name: string): Resolved => resolved.get(name)!;
  const mustBeBelow = (lower: string, upper: string): void => {
    if ((get(lower).value as number) < (get(upper).value as number)) return;
    problems.add(
      `${describeResolved(lower, get(lower))} must be below ${describeResolved(upper, get(upper))}: lower --${flagName(lower)} or raise --${flagName(upper)}`,
    );
  };
  mustBeBelow('broker.heartbeat.interval.ms', 'broker.session.timeout.ms');
  mustBeBelow('controller.quorum.heartbeat.ticks', 'controller.quorum.election.ticks');

  // KRaft's rule: a node is a voter exactly when it runs the controller role.
  const nodeId = get('node.id').value as number;
  const roles = get('process.roles').value as readonly string[];
  const votersSetting = get('controller.quorum.voters');
  const isVoter = parseQuorumVoters(votersSetting.value as string).some((v) => v.id === nodeId);
  const voters = describeResolved('controller.quorum.voters', votersSetting);
  if (roles.includes('controller') && !isVoter) {
    problems.add(
      `node.id ${nodeId} runs the controller role but is not one of ${voters}: add ${nodeId}@host:port to the voters, or set process.roles=broker`,
    );
  }
  if (!roles.includes('controller') && isVoter) {
    problems.add(
      `node.id ${nodeId} is one of ${voters} but process.roles (${roles.join(',')}) leaves out controller: add controller to process.roles, or remove ${nodeId} from the voters`,
    );
  }
}

/** How a source spells a setting: `--broker-port=abc`, `WEIR_BROKER_PORT=abc`, `f:3: broker.port=abc`. */
function describeSetting(name: string, setting: Setting): string {
  switch (setting.source.kind) {
    case 'flag':
      return `--${flagName(name)}=${setting.text}`;
    case 'env':
      return `${envName(name)}=${setting.text}`;
    case 'file':
      return `${setting.source.path}:${setting.source.line}: ${name}=${setting.text}`;
    case 'default':
      return `default ${name}=${setting.text}`;
  }
}

/** `broker.session.timeout.ms (9000, from WEIR_BROKER_SESSION_TIMEOUT_MS)`. */
function describeResolved(name: string, resolved: Resolved): string {
  const value = Array.isArray(resolved.value) ? resolved.value.join(',') : String(resolved.value);
  return `${name} (${value}, ${sourceName(name, resolved.source)})`;
}

function sourceName(name: string, source: SettingSource): string {
  switch (source.kind) {
    case 'flag':
      return `from --${flagName(name)}`;
    case 'env':
      return `from ${envName(name)}`;
    case 'file':
      return `from ${source.path}:${source.line}`;
    case 'default':
      return 'the default';
  }
}

/** `broker_port` or `BROKER-PORT` → ` (did you mean broker.port?)`. */
function suggestion(name: string): string {
  const normalized = name
    .toLowerCase()
    .replace(/^weir[._-]/, '')
    .replace(/[-_]/g, '.');
  return findServerOption(normalized) === undefined ? '' : ` (did you mean ${normalized}?)`;
}

function withoutCode(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^INVALID_CONFIG: /, '');
}
