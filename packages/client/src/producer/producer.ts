// The producer (`weir.producer(options)`), shaped after KafkaJS's: `connect()`, then
// `send({ topic, messages })` resolving to each record's partition and offset, `flush()` and
// `close()`. Records are batched per partition (RecordAccumulator) and sent by a background
// loop (Sender); send() resolves once every record of the call is acknowledged as `acks` asks.

import { ErrorCode, WeirError, isWeirError } from '@weir/protocol';
import { backoffMs, sleep } from '../backoff.js';
import type { ResolvedConfig } from '../config.js';
import { errorDetail } from '../errors.js';
import { BrokerClients } from '../metadata/broker-clients.js';
import { MetadataCache, NO_LEADER, type TopicMetadata } from '../metadata/metadata-cache.js';
import { BufferMemory } from './buffer-memory.js';
import { StickyPartitioner, type TopicPartitions, choosePartition } from './partitioner.js';
import {
  type ProducerIdentity,
  type ProducerRecord,
  type RecordMetadata,
  prepareRecord,
} from './producer-batch.js';
import {
  type Acks,
  type ProducerOptions,
  type ResolvedProducerConfig,
  resolveAcks,
  resolveProducerConfig,
} from './producer-config.js';
import { RecordAccumulator } from './record-accumulator.js';
import { type ProducerIdentitySource, Sender } from './sender.js';

/** One record of a send(). Strings are sent as UTF-8. */
export interface ProducerMessage {
  /** Records with equal keys go to the same partition (Kafka's murmur2 partitioner). */
  readonly key?: Buffer | Uint8Array | string | null;
  readonly value: Buffer | Uint8Array | string | null;
  readonly headers?:
    | Readonly<Record<string, Buffer | string | null>>
    | readonly { readonly key: string; readonly value: Buffer | string | null }[];
  /** Overrides the partitioner. */
  readonly partition?: number;
  /** Milliseconds since the epoch; now when absent. */
  readonly timestamp?: number | bigint;
}

export interface ProducerSendRequest {
  readonly topic: string;
  readonly messages: readonly ProducerMessage[];
  /** This call's acks; the producer's when absent. An idempotent producer sends only with 'all'. */
  readonly acks?: Acks;
}

/** Where a record was written: `offset` is -1n with acks 0 (the broker does not answer). */
export type { RecordMetadata };

type State = 'new' | 'connecting' | 'connected' | 'closing' | 'closed';

export class Producer {
  /** The options in effect, defaults filled in. */
  readonly config: ResolvedProducerConfig;
  private readonly clients: BrokerClients;
  private readonly metadata: MetadataCache;
  private readonly memory: BufferMemory;
  private readonly accumulators = new Map<-1 | 0 | 1, RecordAccumulator>();
  private readonly sticky = new StickyPartitioner();
  private readonly topicWaits = new Map<string, Promise<TopicMetadata>>();
  private readonly sender: Sender;
  private identity: ProducerIdentity | undefined;
  private state: State = 'new';
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  /** @internal Made by `Weir.producer()`; throws INVALID_CONFIG saying what to change. */
  constructor(
    private readonly client: ResolvedConfig,
    options: ProducerOptions = {},
  ) {
    this.config = resolveProducerConfig(client, options);
    this.clients = new BrokerClients(client.clientId);
    this.metadata = new MetadataCache({
      bootstrap: client.brokers,
      clients: this.clients,
      requestTimeoutMs: this.config.requestTimeoutMs,
      metadataMaxAgeMs: this.config.metadataMaxAgeMs,
      refreshBackoffMs: this.config.retryBackoffMs,
      refreshBackoffMaxMs: this.config.retryBackoffMaxMs,
    });
    this.memory = new BufferMemory(this.config.bufferMemoryBytes);
    this.accumulatorFor(this.config.acks);
    this.sender = new Sender({
      config: this.config,
      metadata: this.metadata,
      clients: this.clients,
      accumulators: this.accumulators,
      identity: this.config.idempotent ? this.identitySource() : undefined,
    });
  }

  /** The producer id and epoch of an idempotent producer once connected. */
  get producerIdentity(): ProducerIdentity | undefined {
    return this.identity;
  }

  /**
   * Contacts the cluster: fetches metadata and, with idempotence, a producer id
   * (InitProducerId). Rejects with the last error when no broker answered within
   * `requestTimeoutMs`. Calling it again is harmless.
   */
  connect(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed')
      return Promise.reject(this.closedError());
    this.connecting ??= this.connectOnce();
    return this.connecting;
  }

  /**
   * Sends the records and resolves, in message order, with where each was written once all are
   * acknowledged. Waits for the topic's metadata (up to `requestTimeoutMs`) and for buffer
   * memory (up to `deliveryTimeoutMs`). Rejects with a WeirError: the broker's error for a
   * record that failed (`code`, `retriable`), INVALID_RECORD or INVALID_TIMESTAMP for a message
   * that cannot be sent (then nothing of the call is sent), UNKNOWN_TOPIC_OR_PARTITION for a
   * topic no broker knows.
   */
  async send(request: ProducerSendRequest): Promise<RecordMetadata[]> {
    this.checkSendable();
    const { topic, messages } = checkSendRequest(request);
    const acks = request.acks === undefined ? this.config.acks : resolveAcks(request.acks, 'acks');
    if (this.config.idempotent && acks !== -1) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `this producer is idempotent, so it sends with acks 'all' only, got acks ${acks}; leave acks out, or use a producer with idempotent: false`,
      );
    }
    if (messages.length === 0) return [];
    const records = messages.map((message) => toProducerRecord(topic, message));
    // A message that cannot be encoded sends nothing of the call, as in KafkaJS.
    const nowMs = Date.now();
    for (const record of records) prepareRecord(record, nowMs);
    let metadata = this.topicWaits.has(topic) ? undefined : this.metadata.topic(topic);
    if (metadata === undefined || !explicitPartitionsExist(messages, metadata)) {
      metadata = await this.topicMetadata(topic);
      this.checkSendable();
    }
    const accumulator = this.accumulatorFor(acks);
    const partitions = topicPartitions(metadata);
    // An explicit partition that does not exist also sends nothing of the call.
    for (const { partition } of messages) {
      if (partition !== undefined) {
        choosePartition({ topic, partition }, partitions, this.sticky, () => false);
      }
    }
    const signal = AbortSignal.timeout(this.config.deliveryTimeoutMs);
    const results = records.map((record, index) => {
      const partition = choosePartition(
        { topic, key: record.key, partition: messages[index]!.partition },
        partitions,
        this.sticky,
        (p) => accumulator.startsNewBatch({ ...record, partition: p }),
      );
      return accumulator.append({ ...record, partition }, { signal }).then((handle) => {
        if (handle.newBatchCreated || handle.batchIsFull) this.sender.wake();
        return handle.result;
      });
    });
    // Appends waiting for memory make every batch ready: the sender must look now.
    if (accumulator.waitingAppends > 0) this.sender.wake();
    const written = await Promise.all(results);
    return written.map(({ topic, partition, offset }) => ({ topic, partition, offset }));
  }

  /**
   * Sends every buffered record without waiting for `lingerMs`, and resolves when each record
   * sent before the call is acknowledged or has failed (its send() says which).
   */
  async flush(): Promise<void> {
    const flushes = [...this.accumulators.values()].map((accumulator) => accumulator.flush());
    this.sender.wake();
    await Promise.all(flushes);
  }

  /**
   * Flushes (every record sent is acknowledged or fails, within `deliveryTimeoutMs`), then
   * closes the connections. Sends still waiting for metadata or buffer memory, and later
   * ones, fail with ILLEGAL_STATE.
   */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async connectOnce(): Promise<void> {
    this.state = 'connecting';
    try {
      await this.metadata.refresh();
      if (this.config.idempotent) await this.initProducerId();
    } catch (error) {
      this.connecting = undefined;
      this.state = 'new';
      throw error;
    }
    if (this.isClosing()) return;
    this.state = 'connected';
    this.sender.start();
  }

  private async closeOnce(): Promise<void> {
    const wasConnected = this.state === 'connected';
    this.state = 'closing';
    if (wasConnected) await this.flush();
    await this.sender.stop();
    const error = this.closedError();
    for (const accumulator of this.accumulators.values()) accumulator.abortAll(error);
    this.metadata.close();
    this.clients.close();
    this.state = 'closed';
  }

  private identitySource(): ProducerIdentitySource {
    return {
      current: () => this.identity!,
      renew: () => this.initProducerId(),
    };
  }

  /** InitProducerId from any broker, moving between brokers within `requestTimeoutMs`. */
  private async initProducerId(): Promise<void> {
    const startedMs = Date.now();
    const deadline = startedMs + this.config.requestTimeoutMs;
    let lastError: WeirError | undefined;
    for (let round = 1; ; round++) {
      for (const address of this.metadata.brokerAddresses()) {
        const remainingMs = deadline - Date.now();
        if (remainingMs <= 0) break;
        try {
          const response = await this.clients.call(address, 'initProducerId', {}, remainingMs);
          this.identity = {
            producerId: response.producerId,
            producerEpoch: response.producerEpoch,
          };
          for (const accumulator of this.accumulators.values()) accumulator.sequences.reset();
          return;
        } catch (error) {
          lastError = isWeirError(error)
            ? error
            : new WeirError(ErrorCode.UNKNOWN_SERVER_ERROR, String(error));
          if (!lastError.retriable) throw lastError;
        }
      }
      const waitMs = backoffMs(round, this.config.retryBackoffMs, this.config.retryBackoffMaxMs);
      const untilDeadlineMs = deadline - Date.now();
      if (untilDeadlineMs <= 0) break;
      await sleep(Math.min(waitMs, untilDeadlineMs));
    }
    throw new WeirError(
      lastError?.code ?? ErrorCode.REQUEST_TIMED_OUT,
      `could not get a producer id within ${Date.now() - startedMs} ms${lastError === undefined ? '' : `: ${errorDetail(lastError)}`}`,
      { cause: lastError },
    );
  }

  /**
   * Waits for the topic's metadata; refreshes when a message names a partition the cached
   * metadata does not have (the topic may have grown), and the partitioner then reports it.
   * Sends waiting for one topic share one wait and so go on in the order they were called:
   * records of sends not awaited one by one keep their call order.
   */
  private topicMetadata(topic: string): Promise<TopicMetadata> {
    let waiting = this.topicWaits.get(topic);
    if (waiting === undefined) {
      waiting = this.fetchTopicMetadata(topic).finally(() => this.topicWaits.delete(topic));
      this.topicWaits.set(topic, waiting);
    }
    return waiting;
  }

  private async fetchTopicMetadata(topic: string): Promise<TopicMetadata> {
    if (this.metadata.topic(topic) !== undefined) {
      await this.metadata.refresh();
      const refreshed = this.metadata.topic(topic);
      if (refreshed !== undefined) return refreshed;
    }
    return this.metadata.waitForTopic(topic, this.config.requestTimeoutMs);
  }

  private accumulatorFor(acks: -1 | 0 | 1): RecordAccumulator {
    let accumulator = this.accumulators.get(acks);
    if (accumulator === undefined) {
      accumulator = new RecordAccumulator({ ...this.config, memory: this.memory });
      this.accumulators.set(acks, accumulator);
    }
    return accumulator;
  }

  private checkSendable(): void {
    const fatal = this.sender.fatal;
    if (fatal !== undefined) throw fatal;
    if (this.isClosing()) throw this.closedError();
    if (this.state !== 'connected') {
      throw new WeirError(
        ErrorCode.ILLEGAL_STATE,
        'the producer is not connected: await producer.connect() before send()',
      );
    }
  }

  private isClosing(): boolean {
    return this.state === 'closing' || this.state === 'closed';
  }

  private closedError(): WeirError {
    return new WeirError(
      ErrorCode.ILLEGAL_STATE,
      'the producer is closed; get a new one with weir.producer()',
    );
  }
}

function checkSendRequest(request: ProducerSendRequest): ProducerSendRequest {
  if (typeof request !== 'object' || request === null) {
    throw new WeirError(
      ErrorCode.INVALID_REQUEST,
      "send() takes { topic, messages }, e.g. send({ topic: 'orders', messages: [{ value: 'hello' }] })",
    );
  }
  if (typeof request.topic !== 'string' || request.topic === '') {
    throw new WeirError(
      ErrorCode.INVALID_TOPIC_EXCEPTION,
      `send() needs a topic name, got ${JSON.stringify(request.topic) ?? typeof request.topic}`,
    );
  }
  if (!Array.isArray(request.messages)) {
    throw new WeirError(
      ErrorCode.INVALID_REQUEST,
      `send() needs messages as an array of { key?, value, headers?, partition?, timestamp? }, got ${typeof request.messages}`,
    );
  }
  return request;
}

function explicitPartitionsExist(
  messages: readonly ProducerMessage[],
  metadata: TopicMetadata,
): boolean {
  return messages.every(
    (m) =>
      m.partition === undefined ||
      !Number.isInteger(m.partition) ||
      m.partition < 0 ||
      m.partition < metadata.partitions.length,
  );
}

function topicPartitions(metadata: TopicMetadata): TopicPartitions {
  return {
    numPartitions: metadata.partitions.length,
    availablePartitions: metadata.partitions
      .filter((p) => p !== undefined && p.leaderId !== NO_LEADER)
      .map((p) => p.partition),
  };
}

/** The message as the accumulator takes it; `partition` is chosen later. */
function toProducerRecord(topic: string, message: ProducerMessage): ProducerRecord {
  if (typeof message !== 'object' || message === null) {
    throw new WeirError(
      ErrorCode.INVALID_RECORD,
      `a message must be an object like { key?, value, headers?, partition?, timestamp? }, got ${message === null ? 'null' : typeof message}`,
    );
  }
  return {
    topic,
    partition: 0,
    key: message.key === undefined ? undefined : toBytes(message.key),
    value: toBytes(message.value),
    headers: message.headers,
    timestamp: message.timestamp,
  };
}

/** Buffers and strings as they are; a Uint8Array viewed as a Buffer without copying. */
function toBytes(bytes: Buffer | Uint8Array | string | null): Buffer | string | null {
  if (bytes instanceof Uint8Array && !Buffer.isBuffer(bytes)) {
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  }
  return bytes;
}
