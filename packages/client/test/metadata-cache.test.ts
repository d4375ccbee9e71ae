// The metadata cache against scripted brokers: coalesced refreshes, periodic refreshes,
// leader hints (KIP-951) that never move a partition back to an older leader epoch, failover
// between brokers, and waiting for a topic.

import { ErrorCode, WeirError } from '@weir/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerClients } from '../src/metadata/broker-clients.js';
import { MetadataCache } from '../src/metadata/metadata-cache.js';
import { deadAddress } from './fake-admin-server.js';
import {
  type FakeBroker,
  type FakeTopic,
  deferred,
  metadataAnswer,
  startFakeBroker,
  waitUntil,
} from './fake-broker-server.js';

const toStop: { stop(): unknown }[] = [];

afterEach(async () => {
  for (const item of toStop.splice(0).reverse()) await item.stop();
});

async function setup(topics: FakeTopic[], options: { metadataMaxAgeMs?: number } = {}) {
  const broker = await startFakeBroker();
  toStop.push(broker);
  const brokers = new Map<number, FakeBroker>([[1, broker]]);
  const state = { topics };
  broker.handle({ metadata: (request) => metadataAnswer(brokers, state.topics, request) });
  const clients = new BrokerClients('metadata-test');
  const cache = new MetadataCache({
    bootstrap: [broker.address],
    clients,
    requestTimeoutMs: 2_000,
    refreshBackoffMs: 10,
    ...options,
  });
  toStop.push({ stop: () => clients.close() }, { stop: () => cache.close() });
  return { broker, brokers, state, cache };
}

describe('MetadataCache', () => {
  it('coalesces concurrent refreshes into one call, plus one for callers that came during it', async () => {
    const { broker, cache } = await setup([{ name: 't', partitions: [{ leader: 1 }] }]);
    const hold = deferred();
    const answer = broker.requests;
    broker.handle({
      metadata: async (request) => {
        await hold.promise;
        return metadataAnswer(
          new Map([[1, broker]]),
          [{ name: 't', partitions: [{ leader: 1 }] }],
          request,
        );
      },
    });
    const first = cache.refresh();
    await waitUntil('the first call', () => answer.metadata.length === 1);
    const during = [cache.refresh(), cache.refresh(), cache.refresh()];
    hold.resolve();
    await Promise.all([first, ...during]);
    expect(answer.metadata).toHaveLength(2);
  });

  it('asks only for the topics in use, and knows leaders and broker addresses', async () => {
    const { broker, cache } = await setup([{ name: 't', partitions: [{ leader: 1, epoch: 4 }] }]);
    cache.addTopics(['t']);
    await cache.refresh();
    expect(broker.requests.metadata[0]!.topics).toEqual(['t']);
    expect(cache.leaderFor('t', 0)).toBe(1);
    expect(cache.partition('t', 0)?.leaderEpoch).toBe(4);
    expect(cache.brokerAddress(1)).toBe(broker.address);
  });

  it('refreshes when the data is metadataMaxAgeMs old', async () => {
    const { broker, cache } = await setup([], { metadataMaxAgeMs: 50 });
    await cache.refresh();
    await waitUntil('periodic refreshes', () => broker.requests.metadata.length >= 3);
  });

  it('takes a newer leader from an error answer, and never goes back to an older epoch', async () => {
    const other = await startFakeBroker();
    toStop.push(other);
    const { brokers, state, cache } = await setup([
      { name: 't', partitions: [{ leader: 1, epoch: 1 }] },
    ]);
    brokers.set(2, other);
    cache.addTopics(['t']);
    await cache.refresh();
    expect(cache.applyLeaderHint('t', 0, { leaderId: 2, leaderEpoch: 2 })).toBe(true);
    expect(cache.leaderFor('t', 0)).toBe(2);
    // A stale hint, and a broker whose image lags, leave it.
    expect(cache.applyLeaderHint('t', 0, { leaderId: 1, leaderEpoch: 1 })).toBe(false);
    await cache.refresh();
    expect(cache.partition('t', 0)).toMatchObject({ leaderId: 2, leaderEpoch: 2 });
    state.topics = [{ name: 't', partitions: [{ leader: 1, epoch: 3 }] }];
    await cache.refresh();
    expect(cache.partition('t', 0)).toMatchObject({ leaderId: 1, leaderEpoch: 3 });
  });

  it('moves on to the next broker when one cannot be reached', async () => {
    const broker = await startFakeBroker();
    toStop.push(broker);
    broker.handle({ metadata: (request) => metadataAnswer(new Map([[1, broker]]), [], request) });
    const clients = new BrokerClients('metadata-test');
    const cache = new MetadataCache({
      bootstrap: [await deadAddress(), broker.address],
      clients,
      requestTimeoutMs: 2_000,
      refreshBackoffMs: 10,
    });
    toStop.push({ stop: () => clients.close() }, { stop: () => cache.close() });
    await cache.refresh();
    expect(cache.brokerAddress(1)).toBe(broker.address);
  });

  it('waits for a topic, then fails with UNKNOWN_TOPIC_OR_PARTITION at its deadline', async () => {
    const { broker, state, cache } = await setup([]);
    const missing = cache.waitForTopic('late', 300);
    await expect(missing).rejects.toThrow(WeirError);
    const error = (await missing.catch((caught: unknown) => caught)) as WeirError;
    expect(error.code).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expect(broker.requests.metadata.length).toBeGreaterThan(2);
    // A topic created while waiting is found.
    const waiting = cache.waitForTopic('late', 5_000);
    await waitUntil('a refresh', () => broker.requests.metadata.length > 4);
    state.topics = [{ name: 'late', partitions: [{ leader: 1 }, { leader: 1 }] }];
    expect((await waiting).partitions).toHaveLength(2);
  });
});
