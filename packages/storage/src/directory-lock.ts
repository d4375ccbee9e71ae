// One process per data directory: two brokers appending to the same segments would corrupt
// them. Kafka takes a `FileLock` on `<log.dir>/.lock` at start-up (`LogManager.lockLogDirs`).
// Node has no flock()/fcntl(), so we borrow LevelDB's: opening a LevelDB takes an fcntl lock on
// its LOCK file, which the kernel drops when the process dies, so a lock left by a SIGKILLed
// broker never blocks the next start (a pid file would).
//
// Beside the LOCK file we write `owner` (pid, host, start times) so that the error names the
// process to stop. LevelDB ignores files whose names it does not recognise.

import { hostname } from 'node:os';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { ErrorCode, WeirError } from '@weir/protocol';
import { readCheckpointFile, storageError, writeFileAtomically } from './checkpoint-file.js';

export const LOCK_DIRECTORY_NAME = '.lock';
export const LOCK_OWNER_FILE_NAME = 'owner';

export interface DirectoryLock {
  readonly dir: string;
  /** Removes the owner file and drops the lock; calling it again does nothing. */
  release(): Promise<void>;
}

/** Who holds the lock, as written to `<dir>/.lock/owner` (JSON). */
export interface LockOwner {
  readonly pid: number;
  readonly hostname: string;
  /** ISO-8601 time the holding process started. */
  readonly processStartedAt: string;
  /** ISO-8601 time the lock was acquired. */
  readonly lockedAt: string;
}

/**
 * Locks `dir` (created if missing) for this process. Throws LOG_DIRECTORY_LOCKED naming the
 * holder when another process — or this one, through an earlier acquire — holds it.
 */
export async function acquireDirectoryLock(dir: string): Promise<DirectoryLock> {
  const lockPath = join(dir, LOCK_DIRECTORY_NAME);
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw storageError('create data directory', dir, error);
  }
  const db = new ClassicLevel(lockPath);
  try {
    await db.open();
  } catch (error) {
    throw await openFailure(dir, lockPath, error);
  }
  const ownerPath = join(lockPath, LOCK_OWNER_FILE_NAME);
  try {
    await writeFileAtomically(ownerPath, `${JSON.stringify(currentOwner())}\n`);
  } catch (error) {
    await db.close();
    throw error;
  }
  return new LevelDirectoryLock(dir, db, ownerPath);
}

class LevelDirectoryLock implements DirectoryLock {
  private released = false;

  constructor(
    readonly dir: string,
    private readonly db: ClassicLevel,
    private readonly ownerPath: string,
  ) {}

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    // Remove the owner file while still holding the lock, so we never delete a successor's.
    try {
      await rm(this.ownerPath, { force: true });
    } finally {
      await this.db.close();
    }
  }
}

function currentOwner(): LockOwner {
  const processStartedMs = Date.now() - Math.round(process.uptime() * 1000);
  return {
    pid: process.pid,
    hostname: hostname(),
    processStartedAt: new Date(processStartedMs).toISOString(),
    lockedAt: new Date().toISOString(),
  };
}

async function openFailure(dir: string, lockPath: string, error: unknown): Promise<WeirError> {
  // classic-level wraps LevelDB's status in LEVEL_DATABASE_NOT_OPEN with the reason as `cause`.
  const cause = (error as { cause?: { code?: unknown } }).cause;
  if (cause?.code === 'LEVEL_LOCKED') {
    const holder = await describeOwner(join(lockPath, LOCK_OWNER_FILE_NAME));
    return new WeirError(
      ErrorCode.LOG_DIRECTORY_LOCKED,
      `data directory ${dir} is locked by ${holder}`,
      {
        cause: error,
      },
    );
  }
  if (cause?.code === 'LEVEL_CORRUPTION') {
    return new WeirError(
      ErrorCode.CORRUPT_STORE,
      `the lock database ${lockPath} is corrupt; it holds no data: stop every process using ${dir}, delete ${lockPath} and start again`,
      { cause: error },
    );
  }
  return storageError('lock data directory', dir, cause ?? error);
}

/** Best effort: the owner file may be missing (holder still starting) or from an older holder. */
async function describeOwner(ownerPath: string): Promise<string> {
  try {
    const owner = JSON.parse((await readCheckpointFile(ownerPath)) ?? 'null') as LockOwner | null;
    if (owner === null) return `another process (${ownerPath} does not say which)`;
    const who =
      owner.pid === process.pid && owner.hostname === hostname()
        ? 'this process'
        : 'another process';
    return (
      `${who} (pid ${owner.pid} on host ${owner.hostname}, started ${owner.processStartedAt}, ` +
      `locked at ${owner.lockedAt}); stop it or choose another data directory`
    );
  } catch {
    return `another process (${ownerPath} is unreadable)`;
  }
}
