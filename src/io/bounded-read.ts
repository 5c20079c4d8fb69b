/**
 * Reading a whole file that a user named (a flag, a config, a member of a checkpoint folder) into memory.
 *
 * `readFileSync` reads until end of file, so `/dev/zero` or `/dev/urandom` runs the process out of memory, a FIFO
 * with no writer blocks it forever, and a 40 GB file named by mistake is allocated before anything looks at it.
 * Here the file is opened without blocking, must be a regular file, and must be no larger than the caller's
 * bound — all checked before a byte is read or a buffer allocated, with an error that names the file.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';

/** JSON a person or a tool writes by hand or by script: configs, manifests, indexes, locks. */
export const JSON_FILE_LIMIT = 64 * 2 ** 20;
/** Text read whole into one string (tokenizers, prompt lists, evaluation texts): V8's longest string is ~512 M. */
export const TEXT_FILE_LIMIT = 512 * 2 ** 20;

function kindOf(s: Stats): string {
  if (s.isDirectory()) return 'a directory';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isFIFO()) return 'a named pipe';
  if (s.isSocket()) return 'a socket';
  return 'not a regular file';
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** A file that is not read: not a regular file, or larger than its bound. `reason` reads after the path. */
export class UnreadableFileError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path} ${reason}`);
    this.name = 'UnreadableFileError';
  }
}

/**
 * A file descriptor for reading `path` that never waits: a named pipe with no writer opens at once (and is then
 * refused by its caller's regular-file check) instead of blocking the process. No effect on regular files.
 */
export function openForReading(path: string): number {
  return openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
}

/** The bytes of the regular file `path`, at most `maxBytes` of them (else an error naming the file and its size). */
export function readBoundedFile(path: string, maxBytes: number): Buffer {
  const fd = openForReading(path);
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new UnreadableFileError(path, `is ${kindOf(stats)}, not a file`);
    if (stats.size > maxBytes) {
      throw new UnreadableFileError(path, `is ${mib(stats.size)}, more than the ${mib(maxBytes)} such a file may have`);
    }
    const bytes = Buffer.allocUnsafe(stats.size);
    let filled = 0;
    while (filled < bytes.length) {
      const n = readSync(fd, bytes, filled, bytes.length - filled, filled);
      if (n === 0) break; // the file shrank while being read: what is there
      filled += n;
    }
    return filled === bytes.length ? bytes : bytes.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}

/** The UTF-8 text of the regular file `path` (at most `maxBytes` bytes). */
export function readBoundedText(path: string, maxBytes: number = TEXT_FILE_LIMIT): string {
  return readBoundedFile(path, maxBytes).toString('utf8');
}

/** The parsed JSON of the regular file `path` (at most `maxBytes`); a syntax error passes on as JSON.parse's. */
export function readJsonFile(path: string, maxBytes: number = JSON_FILE_LIMIT): unknown {
  return JSON.parse(readBoundedText(path, maxBytes));
}
