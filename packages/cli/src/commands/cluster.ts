// `weir cluster status`: the brokers, the active controller and the metadata quorum.

import type { BrokerDescription, ClusterDescription, QuorumDescription } from '@weir/client';
import type { Command } from 'commander';
import { addConnectionOptions, jsonOutput, withAdmin } from '../admin-command.js';
import type { CliIo } from '../io.js';
import { formatPairs, formatTable, writeJson } from '../output.js';

export function registerClusterCommand(program: Command, io: CliIo): void {
  const cluster = program
    .command('cluster')
    .description('inspect the cluster: brokers, controller and metadata quorum')
    .addHelpText('after', '\nExample:\n  $ weir cluster status --bootstrap 127.0.0.1:9092\n');

  addConnectionOptions(
    cluster
      .command('status')
      .description(
        'show each broker (endpoint, rack, fenced/unfenced/shutting-down, epoch), the active controller, and the quorum voters with their log end offsets and lag',
      )
      .addHelpText(
        'after',
        '\nExamples:\n  $ weir cluster status\n  $ weir cluster status --bootstrap 10.0.0.1:9092,10.0.0.2:9092 --json\n',
      ),
    io,
  ).action(async (_options: unknown, command: Command) => {
    await withAdmin(io, command, async (admin) => {
      const [described, quorum] = await Promise.all([
        admin.describeCluster(),
        admin.describeQuorum(),
      ]);
      if (jsonOutput(command)) writeJson(io, { ...described, quorum });
      else io.stdout.write(formatStatus(described, quorum));
    });
  });
}

function endpoints(broker: BrokerDescription): string {
  if (broker.endpoints.length === 0) return '-';
  return broker.endpoints.map((e) => `${e.host}:${e.port}`).join(',');
}

function formatStatus(cluster: ClusterDescription, quorum: QuorumDescription): string {
  const summary = formatPairs([
    ['Cluster', cluster.clusterId],
    [
      'Controller',
      cluster.controllerId === null ? 'none (election under way)' : String(cluster.controllerId),
    ],
    ['Metadata offset', String(cluster.metadataOffset)],
  ]);
  const brokers =
    cluster.brokers.length === 0
      ? 'No brokers registered.\n'
      : formatTable(
          ['BROKER', 'ENDPOINT', 'RACK', 'STATE', 'EPOCH'],
          cluster.brokers.map((b) => [
            String(b.brokerId),
            endpoints(b),
            b.rack ?? '-',
            b.state,
            String(b.brokerEpoch),
          ]),
        );
  const quorumSummary = formatPairs([
    [
      'Quorum leader',
      quorum.leaderId === null ? 'none (election under way)' : String(quorum.leaderId),
    ],
    ['Leader epoch', String(quorum.leaderEpoch)],
    ['High watermark', String(quorum.highWatermark)],
  ]);
  const voters = formatTable(
    ['VOTER', 'ROLE', 'LOG END OFFSET', 'LAG'],
    quorum.voters.map((v) => [
      String(v.nodeId),
      v.nodeId === quorum.leaderId ? 'leader' : 'follower',
      String(v.logEndOffset),
      String(v.lag),
    ]),
  );
  return [summary, brokers, quorumSummary, voters].join('\n');
}
