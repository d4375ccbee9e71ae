import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, isWeirError } from '@weir/protocol';
import type { DirectoryLock, LockOwner } from './directory-lock.js';
import { acquireDirectoryLock } from './directory-lock.js';

const classicLevelUrl = pathToFileURL(createRequire(import.meta.url).resolve('classic-level')).href;

/**
 * A second process holding the lock the way a broker does: LevelDB at <dir>/.lock plus the owner
 * file. It prints "locked" once it holds the lock and then waits to be killed.
 */
const holderScript = `
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
const { ClassicLevel } = await import(process.env.CLASSIC_LEVEL_URL);
const lockPath = process.env.LOCK_DIR + '/.lock';
const db = new ClassicLevel(lockPath);
await db.open();
const now = new Date().toISOString();
writeFileSync(lockPath + '/owner', JSON.stringify({ pid: process.pid, hostname: hostname(), processStartedAt: now, lockedAt: now }));
console.log('locked');
setInterval(() => {}, 1 << 30);
`;

let dir: string;
const locks: DirectoryLock[] = [];
const children: ChildProcess[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-lock-'));
});

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  }
  for (const lock of locks.splice(0)) await lock.release();
  await rm(dir, { recursive: true, force: true });
});

async function acquire(path: string): Promise<DirectoryLock> {
  const lock = await acquireDirectoryLock(path);
  locks.push(lock);
  return lock;
}

/** Starts the holder and resolves once it holds the lock. */
async function startHolder(lockDir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', holderScript], {
    env: { ...process.env, CLASSIC_LEVEL_URL: classicLevelUrl, LOCK_DIR: lockDir },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const lines = createInterface({ input: child.stdout });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`lock holder exited with ${String(code)} before locking`);
  });
  const locked = (async () => {
    for await (const line of lines) if (line === 'locked') return;
  })();
  await Promise.race([locked, exited]);
  exited.catch(() => undefined);
  return child;
}

function expectLocked(error: unknown, ...fragments: string[]): boolean {
  if (!isWeirError(error, ErrorCode.LOG_DIRECTORY_LOCKED)) return false;
  return fragments.every((fragment) => error.message.includes(fragment));
}

describe('acquireDirectoryLock', () => {
  it('creates the directory and records the owner', async () => {
    const dataDir = join(dir, 'data');
    await acquire(dataDir);
    const owner = JSON.parse(await readFile(join(dataDir, '.lock', 'owner'), 'utf8')) as LockOwner;
    expect(owner.pid).toBe(process.pid);
    expect(Date.parse(owner.processStartedAt)).toBeLessThanOrEqual(Date.parse(owner.lockedAt));
  });

  it('refuses a second acquire in the same process, naming it', async () => {
    await acquire(dir);
    await expect(acquireDirectoryLock(dir)).rejects.toSatisfy((error) =>
      expectLocked(error, `data directory ${dir} is locked by this process (pid ${process.pid}`),
    );
  });

  it('can be re-acquired after release', async () => {
    const lock = await acquireDirectoryLock(dir);
    await lock.release();
    await lock.release();
    await acquire(dir);
  });

  it('refuses while another process holds it, and not after that process is SIGKILLed', async () => {
    const child = await startHolder(dir);
    await expect(acquireDirectoryLock(dir)).rejects.toSatisfy((error) =>
      expectLocked(error, `locked by another process (pid ${child.pid}`),
    );
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    const lock = await acquire(dir);
    const owner = JSON.parse(await readFile(join(dir, '.lock', 'owner'), 'utf8')) as LockOwner;
    expect(owner.pid).toBe(process.pid);
    await lock.release();
  });

  it('reports an unusable directory as KAFKA_STORAGE_ERROR', async () => {
    // (Not under /proc: Node 20's recursive mkdir never settles there.)
    const regularFile = join(dir, 'not-a-directory');
    await writeFile(regularFile, '');
    await expect(acquireDirectoryLock(join(regularFile, 'data'))).rejects.toSatisfy((error) =>
      isWeirError(error, ErrorCode.KAFKA_STORAGE_ERROR),
    );
  });
});
