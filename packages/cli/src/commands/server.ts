// `weir server`: runs one node. Every option of the server's config schema is a flag here (and
// a WEIR_* variable, and a config-file key); SIGTERM or SIGINT start a controlled shutdown and
// the process exits 0 once the node has stopped.

import {
  CONFIG_FILE_ENV,
  SERVER_OPTIONS,
  type ServerOption,
  envName,
  flagName,
  loadServerConfig,
  runServer,
} from '@weir/server';
import type { Command } from 'commander';
import type { CliIo } from '../io.js';

export function registerServerCommand(program: Command, io: CliIo): void {
  const command = program
    .command('server')
    .description('run a Weir node (broker, controller or both)')
    .option('--config <file>', `a properties file of options (env ${CONFIG_FILE_ENV})`);
  for (const option of SERVER_OPTIONS as readonly ServerOption[]) {
    command.option(`--${flagName(option.name)} <value>`, describeOption(option));
  }
  command
    .addHelpText(
      'after',
      [
        '',
        'Every option is also a WEIR_* environment variable and a key of the --config file;',
        'flags win over the environment, which wins over the file (docs/operations.md).',
        '',
        'One node of three in combined mode (broker and controller):',
        '',
        'Example:',
        '  $ weir server --node-id 1 --cluster-id my-cluster \\',
        '      --controller-quorum-voters 1@10.0.0.1:9093,2@10.0.0.2:9093,3@10.0.0.3:9093',
        '',
      ].join('\n'),
    )
    .action(async (flags: Record<string, string | undefined>) => {
      const config = loadServerConfig({
        flags: optionValues(flags),
        env: io.env,
        configFile: flags.config ?? emptyToUndefined(io.env[CONFIG_FILE_ENV]),
      });
      const server = await runServer(config);
      await stopOnSignal(
        () => server.stop(),
        (signal) => server.logger.info({ signal }, 'shutting down (controlled shutdown first)'),
      );
    });
}

function describeOption(option: ServerOption): string {
  const fallback =
    option.default === undefined
      ? option.required === true
        ? 'required'
        : 'optional'
      : `default ${Array.isArray(option.default) ? option.default.join(',') : String(option.default)}`;
  return `${option.doc} (env ${envName(option.name)}; ${fallback})`;
}

/** commander's camel-cased option values, keyed by the schema's option names. */
function optionValues(flags: Record<string, string | undefined>): Record<string, string> {
  const values: Record<string, string> = {};
  for (const option of SERVER_OPTIONS as readonly ServerOption[]) {
    const value = flags[camelCase(flagName(option.name))];
    if (value !== undefined) values[option.name] = value;
  }
  return values;
}

function camelCase(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
}

function emptyToUndefined(value: string | undefined): string | undefined {
  return value === '' ? undefined : value;
}

/** Resolves once the node has stopped after the first SIGTERM or SIGINT; a second one exits. */
function stopOnSignal(
  stop: () => Promise<void>,
  onSignal: (signal: NodeJS.Signals) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let stopping = false;
    const handle = (signal: NodeJS.Signals): void => {
      if (stopping) {
        process.exit(1);
      }
      stopping = true;
      onSignal(signal);
      stop().then(resolve, reject);
    };
    process.on('SIGTERM', handle);
    process.on('SIGINT', handle);
  });
}
