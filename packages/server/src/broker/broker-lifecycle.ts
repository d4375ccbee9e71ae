// A broker's life as the controller sees it (Kafka's BrokerLifecycleManager, KIP-631):
// register with a fresh incarnation id, heartbeat to keep the session, get unfenced once the
// metadata log is applied as far as the controller's image, and on shutdown move leadership
// away before exiting. Registration is retried until it succeeds; a STALE_BROKER_EPOCH answer
// (the controller fenced and forgot this registration) means register again.

import { randomUUID } from 'node:crypto';
import type { BrokerEndpoint } from '@weir/metadata';
import { ErrorCode, errorName, isWeirError } from '@weir/protocol';
import type { Logger } from 'pino';
import { Controller, type ControllerChannel } from './controller-channel.js';

export type BrokerState = 'starting' | 'fenced' | 'running' | 'shutting-down' | 'stopped';

export interface BrokerLifecycleOptions {
  readonly brokerId: number;
  readonly clusterId: string;
  /** Read at each registration: the broker listener's port is known once it is bound. */
  readonly endpoints: () => readonly BrokerEndpoint[];
  readonly rack: string | undefined;
  readonly channel: ControllerChannel;
  /** The metadata offset this broker has applied, for heartbeats. */
  readonly metadataOffset: () => bigint;
  readonly heartbeatIntervalMs: number;
  readonly logger: Logger;
  /**
   * Called each time the controller unfences this broker: it has then applied the metadata log
   * as far as the controller's image.
   */
  readonly onUnfenced?: () => void;
}

/** While fenced, heartbeat this often, so the broker is unfenced soon after it catches up. */
const FENCED_HEARTBEAT_INTERVAL_MS = 100;
const REGISTRATION_RETRY_MS = 250;
const MIN_HEARTBEAT_TIMEOUT_MS = 2_000;

export class BrokerLifecycle {
  readonly incarnationId = randomUUID();
  private currentState: BrokerState = 'starting';
  private epoch: bigint | undefined;
  private running = true;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private lastFailure: string | undefined;
  private caughtUp = false;

  constructor(private readonly options: BrokerLifecycleOptions) {}

  get state(): BrokerState {
    return this.currentState;
  }
  get brokerEpoch(): bigint | undefined {
    return this.epoch;
  }
  /**
   * Whether the controller has unfenced this broker since it started: it had then applied the
   * metadata log as far as the controller's image, so its view of its leaderships is current.
   */
  get hasCaughtUp(): boolean {
    return this.caughtUp;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /**
   * Controlled shutdown: asks the controller to move this broker's leaderships away (within
   * `timeoutMs`), then stops heartbeating; the session runs out and the controller fences the
   * broker.
   */
  async shutdown(timeoutMs: number): Promise<{ remainingLeaderships: number }> {
    const epoch = this.currentState === 'stopped' ? undefined : this.epoch;
    this.currentState = 'shutting-down';
    let remainingLeaderships = 0;
    if (epoch !== undefined) {
      try {
        // Leaderships that remain have no other ISR member to go to (KIP-841): asking again
        // would not move them, so one answer is enough.
        const response = await this.options.channel.call(
          Controller.controlledShutdown,
          { brokerId: this.options.brokerId, brokerEpoch: epoch },
          timeoutMs,
        );
        remainingLeaderships = response.remainingLeaderships;
      } catch (error) {
        this.options.logger.warn({ err: error }, 'controlled shutdown did not complete');
      }
    }
    await this.stop();
    return { remainingLeaderships };
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    this.currentState = 'stopped';
  }

  private async run(): Promise<void> {
    while (this.running) {
      if (this.epoch === undefined) await this.register();
      else await this.heartbeat();
      if (!this.running) break;
      await this.sleep(this.nextDelayMs());
    }
  }

  private nextDelayMs(): number {
    if (this.epoch === undefined) return REGISTRATION_RETRY_MS;
    return this.currentState === 'fenced'
      ? Math.min(FENCED_HEARTBEAT_INTERVAL_MS, this.options.heartbeatIntervalMs)
      : this.options.heartbeatIntervalMs;
  }

  private async register(): Promise<void> {
    const { brokerId, clusterId, endpoints, rack, channel, logger } = this.options;
    try {
      const { brokerEpoch } = await channel.call(Controller.registerBroker, {
        clusterId,
        brokerId,
        incarnationId: this.incarnationId,
        endpoints: [...endpoints()],
        rack,
      });
      this.epoch = brokerEpoch;
      this.lastFailure = undefined;
      if (this.currentState === 'starting' || this.currentState === 'running') {
        this.currentState = 'fenced';
      }
      logger.info(
        { brokerEpoch, incarnationId: this.incarnationId },
        'registered with the controller',
      );
    } catch (error) {
      // INCONSISTENT_CLUSTER_ID and DUPLICATE_BROKER_REGISTRATION will not fix themselves, but
      // the operator sees them in the log and may fix the other side; keep trying, and say so
      // once per distinct reason rather than every attempt.
      this.warnOnce('broker registration failed; retrying', error);
    }
  }

  private async heartbeat(): Promise<void> {
    const { brokerId, channel, logger, metadataOffset } = this.options;
    try {
      // A heartbeat older than a few intervals is worth nothing, and a long one would hold up
      // stop() (the last node of a cluster finds no controller to answer it).
      const response = await channel.call(
        Controller.brokerHeartbeat,
        { brokerId, brokerEpoch: this.epoch!, metadataOffset: metadataOffset() },
        Math.max(MIN_HEARTBEAT_TIMEOUT_MS, 2 * this.options.heartbeatIntervalMs),
      );
      this.lastFailure = undefined;
      if (this.currentState === 'shutting-down') return;
      const next: BrokerState = response.isFenced ? 'fenced' : 'running';
      if (next !== this.currentState) {
        logger.info({ from: this.currentState, to: next }, 'broker state changed');
        this.currentState = next;
        if (next === 'running') {
          this.caughtUp = true;
          this.options.onUnfenced?.();
        }
      }
    } catch (error) {
      if (isWeirError(error) && error.code === ErrorCode.STALE_BROKER_EPOCH) {
        logger.warn(
          { err: error },
          'the controller no longer knows this registration; registering again',
        );
        this.epoch = undefined;
        if (this.currentState !== 'shutting-down') this.currentState = 'fenced';
        return;
      }
      this.warnOnce('broker heartbeat failed', error);
    }
  }

  /**
   * Warns about a failure unless the previous one had the same error code (then: debug); the
   * messages of one code differ in details such as a countdown.
   */
  private warnOnce(message: string, error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    const kind = isWeirError(error) ? errorName(error.code) : reason;
    const repeated = kind === this.lastFailure;
    this.lastFailure = kind;
    const fields = isWeirError(error) ? { code: kind, reason } : { err: error };
    if (repeated) this.options.logger.debug(fields, message);
    else this.options.logger.warn(fields, message);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
