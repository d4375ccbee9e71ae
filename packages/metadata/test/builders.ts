// Terse builders of metadata records for tests.
import {
  ConfigResourceType,
  type MetadataRecord,
  NO_LEADER,
  metadataRecord,
} from '../src/index.js';

export function registerBroker(
  brokerId: number,
  brokerEpoch: bigint,
  options: { fenced?: boolean; rack?: string; incarnationId?: string } = {},
): MetadataRecord {
  return metadataRecord({
    $case: 'registerBroker',
    value: {
      brokerId,
      incarnationId: options.incarnationId ?? `incarnation-${brokerId}-${brokerEpoch}`,
      brokerEpoch,
      endpoints: [{ name: 'BROKER', host: '127.0.0.1', port: 9092 + 10 * brokerId }],
      rack: options.rack,
      fenced: options.fenced ?? false,
      inControlledShutdown: false,
    },
  });
}

export function changeBroker(
  brokerId: number,
  brokerEpoch: bigint,
  change: { fenced?: boolean; inControlledShutdown?: boolean },
): MetadataRecord {
  return metadataRecord({
    $case: 'brokerRegistrationChange',
    value: { brokerId, brokerEpoch, ...change },
  });
}

export function topic(name: string, topicId = `id-${name}`): MetadataRecord {
  return metadataRecord({ $case: 'topic', value: { name, topicId } });
}

export function partition(
  topicId: string,
  partitionId: number,
  replicas: number[],
  options: { isr?: number[]; leader?: number; leaderEpoch?: number; partitionEpoch?: number } = {},
): MetadataRecord {
  const isr = options.isr ?? replicas;
  return metadataRecord({
    $case: 'partition',
    value: {
      topicId,
      partitionId,
      replicas,
      isr,
      leader: options.leader ?? isr[0] ?? NO_LEADER,
      leaderEpoch: options.leaderEpoch ?? 0,
      partitionEpoch: options.partitionEpoch ?? 0,
    },
  });
}

export function changePartition(
  topicId: string,
  partitionId: number,
  change: { leader?: number; isr?: number[]; replicas?: number[] },
): MetadataRecord {
  return metadataRecord({
    $case: 'partitionChange',
    value: {
      topicId,
      partitionId,
      leader: change.leader,
      isr: change.isr === undefined ? undefined : { brokerIds: change.isr },
      replicas: change.replicas === undefined ? undefined : { brokerIds: change.replicas },
    },
  });
}

export function removeTopic(topicId: string): MetadataRecord {
  return metadataRecord({ $case: 'removeTopic', value: { topicId } });
}

export function config(
  resourceType: ConfigResourceType,
  resourceName: string,
  name: string,
  value: string | undefined,
): MetadataRecord {
  return metadataRecord({ $case: 'config', value: { resourceType, resourceName, name, value } });
}

export function topicConfig(name: string, key: string, value: string | undefined): MetadataRecord {
  return config(ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC, name, key, value);
}

export function producerIds(
  brokerId: number,
  firstProducerId: bigint,
  size: number,
): MetadataRecord {
  return metadataRecord({
    $case: 'producerIdsBlock',
    value: { brokerId, firstProducerId, size },
  });
}
