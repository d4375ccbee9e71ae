// All partition logs under one data directory (Kafka's LogManager). The directory is locked
// for the life of the manager so two processes can never write the same logs.

import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, WeirError } from '@weir/protocol';
import { type DirectoryLock, acquireDirectoryLock } from './directory-lock.js';
import { type LogConfig } from './log-config.js';
import { Log, type LogOptions } from './log.js';

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

/** Kafka's topic naming rule; it also keeps folder names safe. */
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

/** The folder of a partition's log: `<topic>-<partition>`, as in Kafka. */
export function logDirectoryName({ topic, partition }: TopicPartition): string {
  return `${topic}-${partition}`;
}

export function parseLogDirectoryName(name: string): TopicPartition | undefined {
  const dash = name.lastIndexOf('-');
  if (dash <= 0) return undefined;
  const topic = name.slice(0, dash);
  const partitionText = name.slice(dash + 1);
  if (!TOPIC_NAME.test(topic) || !/^\d+$/.test(partitionText)) return undefined;
  return { topic, partition: Number(partitionText) };
}

function key(tp: TopicPartition): string {
  return logDirectoryName(tp);
}

export interface LogManagerOptions extends Omit<LogOptions, 'config'> {
  /** Defaults for every log; per-log overrides go to `createLog`. */
  readonly defaultConfig?: Partial<LogConfig>;
  /** How many logs open at once during start-up. */
  readonly openConcurrency?: number;
}

export interface BackgroundTaskIntervals {
  /** How often logs with flush policy `interval` are checked (log.flush.scheduler.interval.ms). */
  readonly flushCheckIntervalMs?: number;
  /** How often retention runs (log.retention.check.interval.ms). */
  readonly retentionCheckIntervalMs?: number;
  /** How often recovery points are checkpointed (log.flush.offset.checkpoint.interval.ms). */
  readonly recoveryPointCheckpointIntervalMs?: number;
}

export class LogManager {
  private readonly logs = new Map<string, Log>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly creating = new Map<string, Promise<Log>>();
  /** Folders being removed: a log created again under the same name waits for its removal. */
  private readonly deleting = new Map<string, Promise<void>>();
  private closed = false;

  private constructor(
    readonly dataDir: string,
    private readonly lock: DirectoryLock,
    private readonly options: LogManagerOptions,
  ) {}

  /** Locks `dataDir` and opens (recovering where needed) every partition log under it. */
  static async open(dataDir: string, options: LogManagerOptions = {}): Promise<LogManager> {
    await mkdir(dataDir, { recursive: true });
    const lock = await acquireDirectoryLock(dataDir);
    const manager = new LogManager(dataDir, lock, options);
    try {
      await manager.openExistingLogs();
    } catch (error) {
      await manager.close();
      throw error;
    }
    return manager;
  }

  private async openExistingLogs(): Promise<void> {
    const entries = await readdir(this.dataDir, { withFileTypes: true });
    const partitions = entries
      .filter((entry) => entry.isDirectory())
      .map((entry) => parseLogDirectoryName(entry.name))
      .filter((tp): tp is TopicPartition => tp !== undefined);
    const concurrency = this.options.openConcurrency ?? 4;
    for (let i = 0; i < partitions.length; i += concurrency) {
      await Promise.all(partitions.slice(i, i + concurrency).map((tp) => this.openLog(tp, {})));
    }
  }

  private async openLog(tp: TopicPartition, overrides: Partial<LogConfig>): Promise<Log> {
    const log = await Log.open(join(this.dataDir, logDirectoryName(tp)), {
      ...this.options,
      config: { ...this.options.defaultConfig, ...overrides },
    });
    this.logs.set(key(tp), log);
    return log;
  }

  getLog(tp: TopicPartition): Log | undefined {
    return this.logs.get(key(tp));
  }

  /**
   * The partition's log, created empty if it does not exist yet. Concurrent calls for one
   * partition share one open. Failures are rejections, never synchronous throws.
   */
  async getOrCreateLog(tp: TopicPartition, config: Partial<LogConfig> = {}): Promise<Log> {
    // Everything up to the first await runs synchronously, so the map checks cannot race.
    this.checkOpen();
    if (!TOPIC_NAME.test(tp.topic) || !Number.isInteger(tp.partition) || tp.partition < 0) {
      throw new WeirError(
        ErrorCode.INVALID_TOPIC_EXCEPTION,
        `invalid topic-partition ${tp.topic}-${tp.partition}`,
      );
    }
    const existing = this.logs.get(key(tp));
    if (existing !== undefined) return existing;
    let pending = this.creating.get(key(tp));
    if (pending === undefined) {
      const deletion = this.deleting.get(key(tp)) ?? Promise.resolve();
      pending = deletion
        .then(() => this.openLog(tp, config))
        .finally(() => this.creating.delete(key(tp)));
      this.creating.set(key(tp), pending);
    }
    return pending;
  }

  /** Closes the partition's log and deletes its folder. */
  async deleteLog(tp: TopicPartition): Promise<void> {
    this.checkOpen();
    const log = this.logs.get(key(tp));
    if (log === undefined) {
      throw new WeirError(
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        `no log for ${logDirectoryName(tp)}`,
      );
    }
    this.logs.delete(key(tp));
    const deletion = log.delete().finally(() => this.deleting.delete(key(tp)));
    this.deleting.set(
      key(tp),
      deletion.catch(() => undefined),
    );
    await deletion;
  }

  allLogs(): [TopicPartition, Log][] {
    return [...this.logs.keys()].map((name) => [
      parseLogDirectoryName(name)!,
      this.logs.get(name)!,
    ]);
  }

  /** Applies retention to every log; returns the number of segments deleted. */
  async deleteOldSegments(): Promise<number> {
    let deleted = 0;
    for (const log of this.logs.values()) deleted += await log.deleteOldSegments();
    return deleted;
  }

  /** For logs with flush policy `interval`: flushes those whose interval has passed. */
  async flushDueLogs(): Promise<void> {
    for (const log of this.logs.values()) await log.flushIfDue();
  }

  /** Writes every log's recovery point, so recovery after a crash scans only recent data. */
  async checkpointRecoveryPoints(): Promise<void> {
    for (const log of this.logs.values()) await log.checkpointRecoveryPoint();
  }

  /**
   * Runs flush, retention and checkpoint tasks on timers until close. A task that fails is
   * reported to `onError` and runs again at its next interval.
   */
  startBackgroundTasks(
    intervals: BackgroundTaskIntervals,
    onError: (task: string, error: unknown) => void,
  ): void {
    const every = (task: string, intervalMs: number, run: () => Promise<unknown>) => {
      let running = false;
      const timer = setInterval(() => {
        if (running || this.closed) return; // never overlap a slow run with the next one
        running = true;
        run()
          .catch((error: unknown) => onError(task, error))
          .finally(() => (running = false));
      }, intervalMs);
      timer.unref();
      this.timers.push(timer);
    };
    every('flush', intervals.flushCheckIntervalMs ?? 100, () => this.flushDueLogs());
    every('retention', intervals.retentionCheckIntervalMs ?? 300_000, () =>
      this.deleteOldSegments(),
    );
    every('recovery-point-checkpoint', intervals.recoveryPointCheckpointIntervalMs ?? 60_000, () =>
      this.checkpointRecoveryPoints(),
    );
  }

  /** Closes every log cleanly (so the next start skips recovery) and releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    try {
      // A log still being opened would otherwise be added after close and never closed.
      await Promise.allSettled(this.creating.values());
      await Promise.all([...this.logs.values()].map((log) => log.close()));
      this.logs.clear();
    } finally {
      await this.lock.release();
    }
  }

  private checkOpen(): void {
    if (this.closed)
      throw new WeirError(
        ErrorCode.KAFKA_STORAGE_ERROR,
        `log manager for ${this.dataDir} is closed`,
      );
  }
}
