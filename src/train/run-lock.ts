/**
 * One trainer per run directory: an exclusive lock file (<out>/train.lock) created with O_EXCL,
 * holding the owner's PID, host and start time. A second trainer on the same --out is refused
 * with the owner's PID instead of deleting the first one's checkpoints. A lock left behind by a
 * process that no longer runs (killed, crashed) is taken over, with a note.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { closeSync, mkdirSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { readJsonFile } from '../io/bounded-read.js';

export const LOCK_FILE = 'train.lock';

/** Lock files this process holds (its own PID alone cannot tell two runs in one process apart). */
const heldHere = new Set<string>();

export class RunLockError extends Error {
  override name = 'RunLockError';
}

interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
}

export interface RunLock {
  readonly path: string;
  /** Removes the lock file (only while it is still this process's). */
  release(): void;
}

/** Whether a process with this PID exists on this host (EPERM: it exists under another user). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(path: string): LockOwner | null {
  try {
    const owner = readJsonFile(path) as Partial<LockOwner>;
    if (!Number.isInteger(owner.pid) || typeof owner.host !== 'string') return null;
    return { pid: owner.pid!, host: owner.host, startedAt: String(owner.startedAt ?? '?') };
  } catch {
    return null;
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return Infinity;
  }
}

/** Creates the lock file; false when it exists already. */
function tryCreate(path: string, owner: LockOwner): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, JSON.stringify(owner) + '\n');
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Takes the lock on run directory `out` (created if missing) for this process. Throws
 * RunLockError naming the owner when another live trainer holds it. `note` hears about stale
 * locks taken over.
 */
export function acquireRunLock(out: string, note: (message: string) => void): RunLock {
  mkdirSync(out, { recursive: true });
  const path = join(out, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  // Two rounds: the second after removing a stale lock; losing that race to another trainer
  // that also saw the stale lock leaves its fresh lock in place, and the next round reports it.
  for (let round = 0; round < 2; round++) {
    if (tryCreate(path, me)) {
      heldHere.add(path);
      const release = () => {
        if (!heldHere.delete(path)) return;
        if (readOwner(path)?.pid === me.pid) rmSync(path, { force: true });
        process.off('exit', release);
      };
      // A run that ends by an uncaught error or process.exit still frees its directory.
      process.on('exit', release);
      return { path, release };
    }
    const owner = readOwner(path);
    if (heldHere.has(path))
      throw new RunLockError(`${out} is in use by another training run in this process (PID ${process.pid})`);
    if (owner && owner.host !== me.host) {
      throw new RunLockError(
        `${out} is locked by a training run on ` +
          `host ${owner.host} (PID ${owner.pid}, started ${owner.startedAt}); if that run is gone, delete ${path}`,
      );
    }
    if (owner && owner.pid !== me.pid && processAlive(owner.pid)) {
      throw new RunLockError(
        `${out} is in use by another training run (PID ${owner.pid}, started ${owner.startedAt}); wait for it to ` +
          `finish, stop it, or choose another --out`,
      );
    }
    // A lock without a readable owner may be one being written this instant: only an old one is stale.
    if (!owner && ageMs(path) < 5000) {
      throw new RunLockError(
        `${out} is being locked by another training run (${path} was created just now); choose another --out`,
      );
    }
    if (round === 0) {
      note(
        owner
          ? `note: taking over the lock of ${out} left by PID ${owner.pid} (started ${owner.startedAt}), which is ` +
              `no longer running`
          : `note: taking over the unreadable lock file ${path}`,
      );
      rmSync(path, { force: true });
    }
  }
  throw new RunLockError(`${out}: could not take the lock ${path}; another trainer took it at the same time`);
}
