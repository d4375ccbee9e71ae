// Partition logs a broker must not keep after a restart: those of topics deleted while it was
// down (stray logs, deleted once it has caught up with the metadata log), and a folder whose
// `partition.metadata` names another topic id than the topic of that name now has (a topic
// deleted and created again under the same name): its records are not this topic's.

import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessCluster, call, waitFor } from '../src/index.js';

let cluster: InProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

function partitionDir(c: InProcessCluster, node: number, topic: string): string {
  return join(c.dir, `node-${node}`, 'partitions', `${topic}-0`);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe('stray partition logs', () => {
  it('a restarted broker deletes the log of a topic deleted while it was down, and keeps the others', async () => {
    // A broker-only node keeps no metadata log of its own, and the controller snapshots every
    // few records and truncates its log: the restarted broker starts from a snapshot in which
    // the deleted topic never appears, so no delta tells it of the deletion; only the stray
    // check can.
    cluster = await InProcessCluster.start(
      4,
      { 'metadata.snapshot.interval.records': '5' },
      { controllers: [4], brokers: [1, 2, 3] },
    );
    await cluster.createTopic('gone', 1, 3);
    await cluster.createTopic('kept', 1, 3);
    expect(await exists(partitionDir(cluster, 3, 'gone'))).toBe(true);

    await cluster.stopNode(3);
    await call((callback) => cluster!.admin(1).deleteTopics({ names: ['gone'] }, callback));
    // More metadata, until the controller's log no longer holds the deletion.
    const raft = cluster.servers.get(4)!.node.controllerRole!.raft;
    const deletedAt = raft.commitIndex;
    for (let i = 0; raft.firstIndex <= deletedAt; i++) {
      expect(i).toBeLessThan(20);
      await cluster.createTopic(`later-${i}`, 1, 2);
    }
    await cluster.startNode(3);

    await waitFor('node 3 to delete its log of the deleted topic', async () =>
      (await exists(partitionDir(cluster!, 3, 'gone'))) ? undefined : true,
    );
    expect(await exists(partitionDir(cluster, 3, 'kept'))).toBe(true);
    const lines = cluster.logs.get(3)!.join('\n');
    expect(lines).toMatch(/"topic":"gone".*deleted a stray partition log/);
    expect(lines).not.toMatch(/"topic":"kept".*deleted a stray partition log/);
  });

  it('starts afresh a folder whose partition.metadata names another topic id', async () => {
    cluster = await InProcessCluster.start(3);
    await cluster.createTopic('reborn', 1, 3);
    await cluster.createTopic('same', 1, 3);
    const reborn = partitionDir(cluster, 3, 'reborn');
    const same = partitionDir(cluster, 3, 'same');
    const topicId = (await readFile(join(reborn, 'partition.metadata'), 'utf8')).split(
      'topic_id: ',
    )[1]!;

    // While node 3 is down, its folder comes to hold "another topic's" log: the id of a topic
    // deleted before this one was created under the same name. A marker file in each folder
    // tells whether the folder survived the restart.
    await cluster.stopNode(3);
    await writeFile(
      join(reborn, 'partition.metadata'),
      'version: 0\ntopic_id: 00000000-0000-4000-8000-000000000000\n',
    );
    await writeFile(join(reborn, 'marker'), '');
    await writeFile(join(same, 'marker'), '');
    await cluster.startNode(3);
    await cluster.waitUntilReady();

    await waitFor('node 3 to start the folder afresh', async () =>
      (await exists(join(reborn, 'marker'))) ? undefined : true,
    );
    expect(await readFile(join(reborn, 'partition.metadata'), 'utf8')).toBe(
      `version: 0\ntopic_id: ${topicId}`,
    );
    // A folder of the right topic is kept as it is.
    expect(await exists(join(same, 'marker'))).toBe(true);
  });
});

describe('a replica whose log cannot be opened', () => {
  it('does not hold up the others, and opens once the obstacle is gone', async () => {
    cluster = await InProcessCluster.start(3, {
      'replica.high.watermark.checkpoint.interval.ms': '200',
    });
    // A file where node 2's folder for blocked-0 would go: creating the log fails.
    const blocked = partitionDir(cluster, 2, 'blocked');
    await mkdir(dirname(blocked), { recursive: true });
    await writeFile(blocked, 'not a folder');
    await call((callback) =>
      cluster!.admin(1).createTopics(
        {
          topics: [
            { name: 'blocked', partitions: 1, replicationFactor: 3, configs: [] },
            { name: 'fine', partitions: 1, replicationFactor: 3, configs: [] },
          ],
          validateOnly: false,
        },
        callback,
      ),
    );
    const dataPlane = cluster.servers.get(2)!.node.brokerRole!.dataPlane;
    const hosts = (topic: string) => {
      const topicId = dataPlane.replicas.metadataImage?.topic(topic)?.topicId;
      return topicId !== undefined && dataPlane.replicas.partition(topicId, 0) !== undefined;
    };
    // The topic created in the same delta opens on node 2; the blocked one does not.
    await waitFor('node 2 to host fine-0', () => hosts('fine') || undefined);
    expect(hosts('blocked')).toBe(false);
    expect(cluster.logs.get(2)!.join('\n')).toMatch(/could not open a partition replica/);

    await rm(blocked);
    await waitFor('node 2 to open blocked-0 on a later try', () => hosts('blocked') || undefined);
    expect(await exists(join(blocked, 'partition.metadata'))).toBe(true);
  });
});
