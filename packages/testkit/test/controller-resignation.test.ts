// An active controller that stops cleanly hands the quorum's leadership over before it goes, so
// the cluster never waits out an election timeout for a controller during a rolling restart.

import { afterEach, describe, expect, it } from 'vitest';
import { InProcessCluster, waitFor } from '../src/index.js';

let cluster: InProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

function activeController(c: InProcessCluster): number | undefined {
  return [...c.servers].find(([, server]) => server.node.controllerRole?.raft.isLeader)?.[0];
}

describe('a controller that stops cleanly', () => {
  it('hands over the leadership: another node leads as soon as it has stopped', async () => {
    cluster = await InProcessCluster.start(3);
    for (let round = 0; round < 2; round++) {
      const leader = await waitFor('an active controller', () => activeController(cluster!));
      const term = cluster.servers.get(leader)!.node.controllerRole!.raft.term;
      await cluster.stopNode(leader);
      // Without the hand-over the others would only campaign after an election timeout
      // (1–2 s) from now; with it, one already leads, one term on.
      const successor = activeController(cluster);
      expect(successor).toBeDefined();
      expect(successor).not.toBe(leader);
      expect(cluster.servers.get(successor!)!.node.controllerRole!.raft.term).toBe(term + 1);
      await cluster.startNode(leader);
      await cluster.waitUntilReady();
    }
  });
});
