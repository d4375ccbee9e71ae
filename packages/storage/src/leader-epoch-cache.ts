// Which leader epoch wrote which offsets: Kafka's `LeaderEpochFileCache` (KIP-101, refined by
// KIP-279 and used by KIP-320). Each entry says "epoch E's first record is at startOffset"; both
// fields strictly increase. A follower asks the leader for the end offset of its last epoch and
// truncates to it, instead of to its high watermark, so replicas never diverge after an election.
//
// Every change is written to `leader-epoch-checkpoint` in the partition folder before the call
// resolves, in Kafka's layout: `0\n<count>\n<epoch> <startOffset>\n...`.

import { assert } from '@weir/protocol';
import {
  CHECKPOINT_VERSION,
  corruptFileError,
  decodeCheckpoint,
  encodeCheckpoint,
  parseDecimal,
  parseOffsetField,
  readCheckpointFile,
  writeCheckpointFile,
} from './checkpoint-file.js';

export const LEADER_EPOCH_CHECKPOINT_FILE_NAME = 'leader-epoch-checkpoint';

/** OffsetsForLeaderEpoch's answer when the epoch is unknown (Kafka's UNDEFINED_EPOCH). */
export const UNDEFINED_EPOCH = -1;
/** OffsetsForLeaderEpoch's answer when the end offset is unknown (UNDEFINED_EPOCH_OFFSET). */
export const UNDEFINED_EPOCH_OFFSET = -1n;

/** Leader epochs are int32 on the wire (RecordBatch v2's partitionLeaderEpoch). */
const MAX_EPOCH = 0x7fff_ffff;

export interface EpochEntry {
  readonly epoch: number;
  /** Offset of the first record written in this epoch. */
  readonly startOffset: bigint;
}

export interface EpochEndOffset {
  readonly epoch: number;
  readonly endOffset: bigint;
}

export class LeaderEpochCache {
  private epochs: EpochEntry[];

  private constructor(
    readonly path: string,
    epochs: EpochEntry[],
  ) {
    this.epochs = epochs;
  }

  /** Reads the checkpoint at `path`; a missing file is an empty cache (a new partition). */
  static async load(path: string): Promise<LeaderEpochCache> {
    const content = await readCheckpointFile(path);
    return new LeaderEpochCache(path, content === undefined ? [] : decodeEpochs(path, content));
  }

  entries(): readonly EpochEntry[] {
    return this.epochs;
  }

  latestEntry(): EpochEntry | undefined {
    return this.epochs.at(-1);
  }

  latestEpoch(): number | undefined {
    return this.latestEntry()?.epoch;
  }

  earliestEntry(): EpochEntry | undefined {
    return this.epochs[0];
  }

  /**
   * Records that `epoch` starts at `startOffset`; called for each appended batch, so repeating the
   * latest epoch is a no-op. Entries a new epoch supersedes — those starting at or after its
   * start offset — are removed first (Kafka's `maybeTruncateNonMonotonicEntries`); so is the
   * latest epoch itself when it is re-assigned an earlier start offset, as Kafka does.
   */
  async assign(epoch: number, startOffset: bigint): Promise<void> {
    assert(
      Number.isInteger(epoch) && epoch >= 0 && epoch <= MAX_EPOCH && startOffset >= 0n,
      () =>
        `invalid leader epoch entry (epoch ${epoch}, start offset ${startOffset}) for ${this.path}`,
    );
    const latest = this.latestEntry();
    if (latest !== undefined) {
      assert(
        epoch >= latest.epoch,
        () =>
          `leader epoch ${epoch} at offset ${startOffset} is older than the latest epoch ` +
          `${latest.epoch} (start offset ${latest.startOffset}) in ${this.path}`,
      );
      if (epoch === latest.epoch && startOffset >= latest.startOffset) return;
    }
    this.epochs = this.epochs.filter(
      (entry) => entry.epoch < epoch && entry.startOffset < startOffset,
    );
    this.epochs.push({ epoch, startOffset });
    await this.persist();
  }

  /**
   * OffsetsForLeaderEpoch (KIP-101/KIP-279): the largest epoch ≤ `requestedEpoch` and the offset
   * where it ended, i.e. the start offset of the next epoch; the latest epoch ends at
   * `logEndOffset`. Follows Kafka's code: a requested epoch below the first cached one (its
   * records were deleted by retention) answers (requestedEpoch, start of the first epoch), so
   * the follower truncates to where the leader's history begins.
   */
  endOffsetFor(requestedEpoch: number, logEndOffset: bigint): EpochEndOffset {
    const latest = this.latestEntry();
    if (requestedEpoch === UNDEFINED_EPOCH || latest === undefined) return undefinedEndOffset();
    if (requestedEpoch === latest.epoch) return { epoch: requestedEpoch, endOffset: logEndOffset };
    const higherIndex = this.epochs.findIndex((entry) => entry.epoch > requestedEpoch);
    const higher = this.epochs[higherIndex];
    // No higher epoch means the requested one is newer than any we know.
    if (higher === undefined) return undefinedEndOffset();
    const floor = this.epochs[higherIndex - 1];
    return { epoch: floor?.epoch ?? requestedEpoch, endOffset: higher.startOffset };
  }

  /** The epoch that wrote `offset`: the last entry starting at or before it (Kafka's `epochForOffset`). */
  epochForOffset(offset: bigint): number | undefined {
    return this.epochs.findLast((entry) => entry.startOffset <= offset)?.epoch;
  }

  /** Removes the entries starting at or after `endOffset`: the log was truncated to it. */
  async truncateFromEnd(endOffset: bigint): Promise<void> {
    const kept = this.epochs.filter((entry) => entry.startOffset < endOffset);
    if (kept.length === this.epochs.length) return;
    this.epochs = kept;
    await this.persist();
  }

  /**
   * The log start moved forward to `startOffset` (retention, DeleteRecords): entries starting at
   * or before it are dropped except the last of them, which now starts at `startOffset` — its
   * epoch still wrote the records from there on (Kafka's `truncateFromStart`).
   */
  async truncateFromStart(startOffset: bigint): Promise<void> {
    const covering = this.epochs.findLast((entry) => entry.startOffset <= startOffset);
    if (covering === undefined) return;
    const later = this.epochs.filter((entry) => entry.startOffset > startOffset);
    this.epochs = [{ epoch: covering.epoch, startOffset }, ...later];
    await this.persist();
  }

  async clear(): Promise<void> {
    this.epochs = [];
    await this.persist();
  }

  /** Checkpoint writes to one file run in call order, so the last one holds the latest state. */
  private persist(): Promise<void> {
    return writeCheckpointFile(this.path, encodeEpochs(this.epochs));
  }
}

function undefinedEndOffset(): EpochEndOffset {
  return { epoch: UNDEFINED_EPOCH, endOffset: UNDEFINED_EPOCH_OFFSET };
}

export function encodeEpochs(epochs: readonly EpochEntry[]): string {
  const lines = epochs.map((entry) => `${entry.epoch} ${entry.startOffset}`);
  return encodeCheckpoint(CHECKPOINT_VERSION, lines);
}

/** Parses a leader-epoch checkpoint; CORRUPT_STORE naming the file and the problem otherwise. */
export function decodeEpochs(path: string, content: string): EpochEntry[] {
  const epochs: EpochEntry[] = [];
  for (const line of decodeCheckpoint(path, content, CHECKPOINT_VERSION)) {
    const entry = decodeEpochEntry(path, line);
    const previous = epochs.at(-1);
    if (
      previous !== undefined &&
      (entry.epoch <= previous.epoch || entry.startOffset <= previous.startOffset)
    ) {
      throw corruptFileError(
        path,
        `entry "${line}" does not follow "${previous.epoch} ${previous.startOffset}"`,
      );
    }
    epochs.push(entry);
  }
  return epochs;
}

function decodeEpochEntry(path: string, line: string): EpochEntry {
  const fields = line.split(' ');
  if (fields.length !== 2)
    throw corruptFileError(path, `entry "${line}" is not "<epoch> <startOffset>"`);
  const [epochText = '', startOffsetText = ''] = fields;
  const epoch = parseDecimal(epochText);
  if (epoch === undefined || epoch > BigInt(MAX_EPOCH)) {
    throw corruptFileError(path, `entry "${line}" has an invalid epoch`);
  }
  return {
    epoch: Number(epoch),
    startOffset: parseOffsetField(path, startOffsetText, 'start offset'),
  };
}
