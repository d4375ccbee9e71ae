// The data-plane gauges on real nodes' /metrics: partitions hosted, and those of the partitions a
// broker leads that are under-replicated or under min.insync.replicas once a broker is down.

import { afterEach, describe, expect, it } from 'vitest';
import { InProcessCluster, waitFor } from '../src/index.js';

let cluster: InProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

async function gauges(c: InProcessCluster, node: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${c.ports.get(node)!.http}/metrics`)).text();
  const values = new Map<string, number>();
  for (const match of text.matchAll(/^(weir_partitions\w*)\{[^}]*\} (\d+)$/gm)) {
    values.set(match[1]!, Number(match[2]));
  }
  return values;
}

describe('data-plane gauges', () => {
  it('count hosted, under-replicated and under-min-ISR partitions, from the leaders', async () => {
    cluster = await InProcessCluster.start(3, {
      'broker.session.timeout.ms': '1500',
      'broker.heartbeat.interval.ms': '300',
    });
    await cluster.createTopic('strict', 3, 3, { 'min.insync.replicas': '3' });
    for (const node of [1, 2, 3]) {
      expect(Object.fromEntries(await gauges(cluster, node))).toMatchObject({
        weir_partitions: 3,
        weir_partitions_under_replicated: 0,
        weir_partitions_under_min_isr: 0,
        weir_partitions_offline: 0,
      });
    }

    // Node 3 goes: every partition loses an ISR member, and is led by node 1 or 2.
    await cluster.stopNode(3);
    const sum = async (gauge: string) =>
      (await gauges(cluster!, 1)).get(gauge)! + (await gauges(cluster!, 2)).get(gauge)!;
    await waitFor('three under-replicated partitions', async () =>
      (await sum('weir_partitions_under_replicated')) === 3 ? true : undefined,
    );
    expect(await sum('weir_partitions_under_min_isr')).toBe(3);
    expect(await sum('weir_partitions_leader')).toBe(3);
  });
});
