// A broker that restarts replays its metadata on the way to the controller's current image, and
// may pass through leaderships it held before; it serves no data until it has caught up (the
// controller unfenced it), so no write lands on a leadership that is no longer its.

import { ErrorCode, RecordBatchBuilder, type proto } from '@weir/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessCluster, call, waitFor } from '../src/index.js';

let cluster: InProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

async function produceAcksOne(
  c: InProcessCluster,
  via: number,
): Promise<proto.weir.broker.ProduceResponse> {
  return call<proto.weir.broker.ProduceResponse>((callback) =>
    c.broker(via).produce(
      {
        acks: 1,
        timeoutMs: 5_000,
        topics: [
          {
            topic: 'orders',
            partitions: [
              { partition: 0, records: new RecordBatchBuilder().append({ value: 'v' }).build() },
            ],
          },
        ],
      },
      callback,
    ),
  );
}

describe('a restarted broker', () => {
  it('refuses Produce until it has caught up with the metadata log, then serves', async () => {
    // Short sessions and shutdowns: the last node to stop has no quorum to shut down with, and
    // the restarted node's old registration, never fenced, must expire before it registers again.
    cluster = await InProcessCluster.start(3, {
      'broker.session.timeout.ms': '1500',
      'broker.heartbeat.interval.ms': '300',
      'controlled.shutdown.timeout.ms': '500',
    });
    await cluster.createTopic('orders', 1, 3);
    for (const id of [3, 2, 1]) await cluster.stopNode(id);

    // Alone, node 1 replays its own metadata log (it names node 1's leaderships as they were)
    // but has no quorum to catch up with: it must not take writes.
    await cluster.startNode(1);
    const refused = await produceAcksOne(cluster, 1).then(
      () => undefined,
      (error: Error) => error,
    );
    expect(refused?.message).toMatch(/has not caught up with the metadata log/);

    await cluster.startNode(2);
    const served = await waitFor('node 1 or 2 to take a write', async () => {
      for (const id of [1, 2]) {
        const answer = await produceAcksOne(cluster!, id).catch(() => undefined);
        if (answer?.topics[0]?.partitions[0]?.error?.code === ErrorCode.NONE) return answer;
      }
      return undefined;
    });
    expect(served.topics[0]!.partitions[0]!.baseOffset).toBe(0n);
  });
});
