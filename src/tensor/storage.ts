import { totalmem } from 'node:os';
import type { Engine, Handle } from '../engine/engine.js';

/**
 * The machine's physical memory, read once: os.totalmem() reads /proc/meminfo (tens of microseconds), and
 * every CPU allocation asks, which would cost a decode step milliseconds.
 */
const PHYSICAL_MEMORY = totalmem();

/**
 * A device buffer shared by a tensor and its views. Each tensor built on it holds one reference (the
 * Tensor constructor takes it); the buffer is freed when the last holder lets go. A new storage has no
 * holders yet: it is freed when the first tensor built on it is, or by `release` if none ever is.
 */
export class Storage {
  private refs = 0;
  private freed = false;

  constructor(
    readonly engine: Engine,
    readonly handle: Handle,
    readonly bytes: number,
  ) {}

  /**
   * A new buffer of `bytes`. On the CPU a request beyond the machine's physical memory is refused here:
   * the allocator could still hand out such a buffer (overcommit) and the process would be killed when
   * the first kernel touches it.
   */
  static allocate(engine: Engine, bytes: number, op = 'allocate'): Storage {
    Storage.checkSize(engine, bytes, op);
    return new Storage(engine, engine.alloc(bytes), bytes);
  }

  /** Throws when a buffer of `bytes` can never be allocated on `engine` (see `allocate`). */
  static checkSize(engine: Engine, bytes: number, op: string): void {
    if (!(bytes >= 0)) throw new RangeError(`${op}: cannot allocate ${bytes} bytes`);
    if (!Number.isSafeInteger(bytes))
      throw new RangeError(`${op}: a tensor of ${formatBytes(bytes)} is more memory than can be addressed`);
    if (engine.device === 'cpu' && bytes > PHYSICAL_MEMORY) {
      throw new RangeError(
        `${op}: a tensor of ${formatBytes(bytes)} does not fit in this machine's ` +
          `${formatBytes(PHYSICAL_MEMORY)} of memory`,
      );
    }
  }

  retain(): this {
    if (this.freed) throw new Error('internal: retain of a freed storage');
    this.refs++;
    return this;
  }

  release(): void {
    if (this.freed) return;
    if (this.refs > 0) this.refs--;
    if (this.refs === 0) {
      this.freed = true;
      this.engine.free(this.handle);
    }
  }

  get alive(): boolean {
    return !this.freed;
  }

  /** How many tensors (a tensor and its views) hold this buffer. */
  get holders(): number {
    return this.refs;
  }
}

function formatBytes(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${bytes} bytes`;
}
