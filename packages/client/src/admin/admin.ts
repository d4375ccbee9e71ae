// The admin client: cluster and quorum state, topics, partitions and topic configs, over the
// AdminService every broker serves. Shaped after KafkaJS's admin client: requests about several
// topics resolve with one result per topic, or reject with a WeirAdminError carrying those
// results when any topic failed.

import type { AdminConnection } from '../connection.js';
import { throwIfAnyFailed } from '../errors.js';
import {
  alterConfigsRequest,
  alterConfigsResults,
  clusterFromProto,
  createPartitionsRequest,
  createPartitionsResults,
  createTopicsRequest,
  createTopicsResults,
  deleteTopicsRequest,
  deleteTopicsResults,
  quorumFromProto,
  topicFromProto,
} from './convert.js';
import type {
  AlterConfigsResult,
  ClusterDescription,
  CreatePartitionsResult,
  CreateTopicResult,
  CreateTopicsOptions,
  DeleteTopicResult,
  PartitionIncrease,
  QuorumDescription,
  TopicConfigChange,
  TopicDescription,
  ValidateOnlyOptions,
} from './types.js';

export class Admin {
  /** @internal Made by `Weir.admin()`. */
  constructor(private readonly connection: AdminConnection) {}

  /** The brokers as the answering broker's metadata image has them, and the controller. */
  async describeCluster(): Promise<ClusterDescription> {
    return clusterFromProto(await this.connection.call('describeCluster', {}));
  }

  /** The metadata quorum: its leader (the active controller), term, and each voter's lag. */
  async describeQuorum(): Promise<QuorumDescription> {
    return quorumFromProto(await this.connection.call('describeQuorum', {}));
  }

  /** Every topic's name, sorted. */
  async listTopics(): Promise<string[]> {
    const response = await this.connection.call('describeTopics', {
      names: [],
      includePartitions: false,
    });
    return response.topics.map((t) => t.name).sort();
  }

  /**
   * The named topics with their partitions and configs, in the order asked; every topic,
   * sorted by name, when `names` is absent. Rejects with a WeirAdminError
   * (UNKNOWN_TOPIC_OR_PARTITION) if a named topic does not exist.
   */
  async describeTopics(names?: readonly string[]): Promise<TopicDescription[]> {
    const response = await this.connection.call('describeTopics', {
      names: [...(names ?? [])],
      includePartitions: true,
    });
    const topics = response.topics.map(topicFromProto);
    if (names === undefined)
      topics.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return throwIfAnyFailed('describe', topics);
  }

  /**
   * Creates topics; each is created or refused on its own (TOPIC_ALREADY_EXISTS,
   * INVALID_REPLICATION_FACTOR, ...). Rejects with a WeirAdminError if any was refused; its
   * `results` say which were created.
   */
  async createTopics(options: CreateTopicsOptions): Promise<CreateTopicResult[]> {
    const request = createTopicsRequest(options.topics, options.validateOnly ?? false);
    const response = await this.connection.call('createTopics', request);
    return throwIfAnyFailed('create', createTopicsResults(response));
  }

  /** Deletes topics and all their data. Rejects with a WeirAdminError if any failed. */
  async deleteTopics(names: readonly string[]): Promise<DeleteTopicResult[]> {
    const response = await this.connection.call('deleteTopics', deleteTopicsRequest(names));
    return throwIfAnyFailed('delete', deleteTopicsResults(response));
  }

  /**
   * Raises topics' partition counts to `count` (partitions are never removed). Rejects with a
   * WeirAdminError if any topic failed.
   */
  async createPartitions(
    increases: readonly PartitionIncrease[],
    options: ValidateOnlyOptions = {},
  ): Promise<CreatePartitionsResult[]> {
    const request = createPartitionsRequest(increases, options.validateOnly ?? false);
    const response = await this.connection.call('createPartitions', request);
    return throwIfAnyFailed('add partitions to', createPartitionsResults(response));
  }

  /**
   * Sets and deletes topic configs incrementally: configs not named keep their values (Kafka's
   * IncrementalAlterConfigs, KIP-339). Rejects with a WeirAdminError if any topic failed.
   */
  async alterConfigs(
    changes: readonly TopicConfigChange[],
    options: ValidateOnlyOptions = {},
  ): Promise<AlterConfigsResult[]> {
    const request = alterConfigsRequest(changes, options.validateOnly ?? false);
    const response = await this.connection.call('incrementalAlterConfigs', request);
    return throwIfAnyFailed('alter configs of', alterConfigsResults(response));
  }

  /** Closes the connections to the brokers; later requests fail with ILLEGAL_STATE. */
  close(): Promise<void> {
    this.connection.close();
    return Promise.resolve();
  }
}
