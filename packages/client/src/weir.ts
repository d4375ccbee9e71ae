// The client's entry point, as KafkaJS's `new Kafka({ brokers, clientId })`: configuration is
// checked here, and `.admin()` (later `.producer()` and `.consumer()`) hands out clients.

import { Admin } from './admin/admin.js';
import { type ResolvedConfig, type WeirConfig, resolveConfig } from './config.js';
import { AdminConnection } from './connection.js';

export class Weir {
  /** The configuration in effect, defaults filled in. */
  readonly config: ResolvedConfig;

  /** Throws INVALID_CONFIG, saying what to change, when an option is wrong. */
  constructor(config: WeirConfig) {
    this.config = resolveConfig(config);
  }

  /** A new admin client with its own connections; close it when done. */
  admin(): Admin {
    return new Admin(new AdminConnection(this.config));
  }
}
