// `weir topics create|list|describe|delete|alter`.

import type { Admin, TopicDescription } from '@weir/client';
import { type Command, Option } from 'commander';
import {
  addConnectionOptions,
  collect,
  collectConfig,
  jsonOutput,
  positiveInteger,
  withAdmin,
} from '../admin-command.js';
import { usageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { formatIds, formatPairs, formatTable, writeJson } from '../output.js';

interface CreateFlags {
  readonly partitions?: number;
  readonly replicationFactor?: number;
  readonly config?: Record<string, string>;
  readonly validateOnly?: boolean;
}

interface AlterFlags {
  readonly partitions?: number;
  readonly config?: Record<string, string>;
  readonly deleteConfig?: string[];
  readonly validateOnly?: boolean;
}

function examples(...lines: string[]): string {
  return `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}\n`).join('')}`;
}

export function registerTopicsCommand(program: Command, io: CliIo): void {
  const topics = program
    .command('topics')
    .description('create, list, describe, delete and alter topics')
    .addHelpText('after', examples('weir topics list', 'weir topics describe orders'));
  registerCreate(topics, io);
  registerList(topics, io);
  registerDescribe(topics, io);
  registerDelete(topics, io);
  registerAlter(topics, io);
}

function registerCreate(topics: Command, io: CliIo): void {
  const command = topics
    .command('create')
    .description('create a topic')
    .argument('<name>', 'the topic name: 1-249 characters from a-z A-Z 0-9 . _ -')
    .option(
      '--partitions <count>',
      "number of partitions (default: the cluster's num.partitions)",
      positiveInteger('--partitions'),
    )
    .option(
      '--replication-factor <count>',
      "copies of each partition (default: the cluster's default.replication.factor)",
      positiveInteger('--replication-factor'),
    )
    .option('--config <key=value>', 'a topic config; repeat for more', collectConfig)
    .option('--validate-only', 'check the request but create nothing')
    .addHelpText(
      'after',
      examples(
        'weir topics create orders --partitions 6 --replication-factor 3',
        'weir topics create audit --partitions 1 --replication-factor 3 --config retention.ms=604800000 --config cleanup.policy=compact',
      ),
    );
  addConnectionOptions(command, io).action(async (name: string, flags: CreateFlags) => {
    await withAdmin(io, command, async (admin) => {
      const validateOnly = flags.validateOnly === true;
      const [created] = await admin.createTopics({
        topics: [
          {
            name,
            ...(flags.partitions !== undefined && { partitions: flags.partitions }),
            ...(flags.replicationFactor !== undefined && {
              replicationFactor: flags.replicationFactor,
            }),
            ...(flags.config !== undefined && { configs: flags.config }),
          },
        ],
        validateOnly,
      });
      if (created === undefined) throw new Error(`the broker answered nothing for topic ${name}`);
      if (jsonOutput(command)) {
        writeJson(io, { ...created, validateOnly });
        return;
      }
      const shape = `${created.partitions} ${created.partitions === 1 ? 'partition' : 'partitions'}, replication factor ${created.replicationFactor}`;
      io.stdout.write(
        validateOnly
          ? `Topic ${name} can be created (${shape}); nothing was changed (--validate-only).\n`
          : `Created topic ${name} (${shape}).\n`,
      );
    });
  });
}

function registerList(topics: Command, io: CliIo): void {
  const command = topics
    .command('list')
    .description('list topic names, one a line, sorted')
    .addHelpText('after', examples('weir topics list', 'weir topics list --json'));
  addConnectionOptions(command, io).action(async () => {
    await withAdmin(io, command, async (admin) => {
      const names = await admin.listTopics();
      if (jsonOutput(command)) writeJson(io, { topics: names });
      else io.stdout.write(names.map((name) => `${name}\n`).join(''));
    });
  });
}

function registerDescribe(topics: Command, io: CliIo): void {
  const command = topics
    .command('describe')
    .description("show a topic's partitions (leader, replicas, ISR, leader epoch) and configs")
    .argument('<name>', 'the topic')
    .addHelpText(
      'after',
      examples('weir topics describe orders', 'weir topics describe orders --json'),
    );
  addConnectionOptions(command, io).action(async (name: string) => {
    await withAdmin(io, command, async (admin) => {
      const [topic] = await admin.describeTopics([name]);
      if (topic === undefined) throw new Error(`the broker answered nothing for topic ${name}`);
      if (jsonOutput(command)) writeJson(io, topic);
      else io.stdout.write(formatTopic(topic));
    });
  });
}

function formatTopic(topic: TopicDescription): string {
  const summary = formatPairs([
    ['Topic', topic.name],
    ['Topic ID', topic.topicId],
    ['Partitions', String(topic.partitionCount)],
    ['Replication factor', String(topic.replicationFactor)],
  ]);
  const partitions = formatTable(
    ['PARTITION', 'LEADER', 'REPLICAS', 'ISR', 'LEADER EPOCH'],
    topic.partitions.map((p) => [
      String(p.partition),
      p.leader === null ? 'none' : String(p.leader),
      formatIds(p.replicas),
      formatIds(p.isr),
      String(p.leaderEpoch),
    ]),
  );
  const entries = Object.entries(topic.configs);
  const configs =
    entries.length === 0
      ? 'No configs set on the topic; the cluster defaults apply.\n'
      : formatTable(['CONFIG', 'VALUE'], entries);
  return [summary, partitions, configs].join('\n');
}

function registerDelete(topics: Command, io: CliIo): void {
  const command = topics
    .command('delete')
    .description('delete a topic and all its data')
    .argument('<name>', 'the topic')
    .addHelpText('after', examples('weir topics delete orders'));
  addConnectionOptions(command, io).action(async (name: string) => {
    await withAdmin(io, command, async (admin) => {
      const [deleted] = await admin.deleteTopics([name]);
      if (jsonOutput(command)) writeJson(io, deleted);
      else io.stdout.write(`Deleted topic ${name}.\n`);
    });
  });
}

function registerAlter(topics: Command, io: CliIo): void {
  const command = topics
    .command('alter')
    .description(
      "raise a topic's partition count, or set and delete its configs (other configs are kept)",
    )
    .argument('<name>', 'the topic')
    .addOption(
      new Option('--partitions <count>', 'the new total number of partitions (only ever raised)')
        .argParser(positiveInteger('--partitions'))
        .conflicts(['config', 'deleteConfig']),
    )
    .option('--config <key=value>', 'set a topic config; repeat for more', collectConfig)
    .option(
      '--delete-config <key>',
      'remove a topic config so the default applies; repeat for more',
      collect,
    )
    .option('--validate-only', 'check the request but change nothing')
    .addHelpText(
      'after',
      examples(
        'weir topics alter orders --partitions 12',
        'weir topics alter orders --config retention.ms=86400000 --delete-config cleanup.policy',
      ),
    );
  addConnectionOptions(command, io).action(async (name: string, flags: AlterFlags) => {
    checkAlterFlags(command, flags);
    await withAdmin(io, command, (admin) =>
      flags.partitions !== undefined
        ? alterPartitions(io, command, admin, name, flags.partitions, flags.validateOnly === true)
        : alterConfigs(io, command, admin, name, flags),
    );
  });
}

function checkAlterFlags(command: Command, flags: AlterFlags): void {
  if (
    flags.partitions === undefined &&
    flags.config === undefined &&
    flags.deleteConfig === undefined
  ) {
    usageError(
      command,
      'nothing to alter: give --partitions N, or --config key=value and/or --delete-config key',
    );
  }
  const both = (flags.deleteConfig ?? []).filter((key) => flags.config?.[key] !== undefined);
  if (both.length > 0) {
    usageError(
      command,
      `${both.join(', ')} is both set (--config) and deleted (--delete-config); choose one`,
    );
  }
}

async function alterPartitions(
  io: CliIo,
  command: Command,
  admin: Admin,
  name: string,
  count: number,
  validateOnly: boolean,
): Promise<void> {
  await admin.createPartitions([{ name, count }], { validateOnly });
  if (jsonOutput(command)) writeJson(io, { name, partitions: count, validateOnly });
  else if (validateOnly)
    io.stdout.write(
      `Topic ${name} can have ${count} partitions; nothing was changed (--validate-only).\n`,
    );
  else io.stdout.write(`Topic ${name} now has ${count} partitions.\n`);
}

async function alterConfigs(
  io: CliIo,
  command: Command,
  admin: Admin,
  name: string,
  flags: AlterFlags,
): Promise<void> {
  const set = flags.config ?? {};
  const deleted = flags.deleteConfig ?? [];
  const validateOnly = flags.validateOnly === true;
  await admin.alterConfigs([{ topic: name, set, delete: deleted }], { validateOnly });
  if (jsonOutput(command)) {
    writeJson(io, { name, set, deleted, validateOnly });
    return;
  }
  const changes = [
    ...Object.entries(set).map(([key, value]) => `set ${key}=${value}`),
    ...deleted.map((key) => `deleted ${key}`),
  ].join(', ');
  io.stdout.write(
    validateOnly
      ? `Configs of topic ${name} can be changed (${changes}); nothing was changed (--validate-only).\n`
      : `Updated configs of topic ${name}: ${changes}.\n`,
  );
}
