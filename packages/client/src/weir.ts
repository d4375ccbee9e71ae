// The client's entry point, as KafkaJS's `new Kafka({ brokers, clientId })`: configuration is
// checked here, and `.producer()`, `.consumer()` and `.admin()` hand out clients, each with
// its own connections.

import { Admin } from './admin/admin.js';
import { type ResolvedConfig, type WeirConfig, resolveConfig } from './config.js';
import { AdminConnection } from './connection.js';
import { Consumer } from './consumer/consumer.js';
import type { ConsumerOptions } from './consumer/consumer-config.js';
import { Producer } from './producer/producer.js';
import type { ProducerOptions } from './producer/producer-config.js';

export class Weir {
  /** The configuration in effect, defaults filled in. */
  readonly config: ResolvedConfig;

  /** Throws INVALID_CONFIG, saying what to change, when an option is wrong. */
  constructor(config: WeirConfig) {
    this.config = resolveConfig(config);
  }

  /**
   * A new producer; `await producer.connect()` before sending, and close it when done. Throws
   * INVALID_CONFIG, saying what to change, when an option is wrong.
   */
  producer(options: ProducerOptions = {}): Producer {
    return new Producer(this.config, options);
  }

  /**
   * A new consumer of the partitions you assign() it (consumer groups come later); close it
   * when done. Throws INVALID_CONFIG, saying what to change, when an option is wrong.
   */
  consumer(options: ConsumerOptions = {}): Consumer {
    return new Consumer(this.config, options);
  }

  /** A new admin client with its own connections; close it when done. */
  admin(): Admin {
    return new Admin(new AdminConnection(this.config));
  }
}
