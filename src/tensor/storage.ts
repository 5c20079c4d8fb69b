import type { Engine, Handle } from '../engine/engine.js';

/** A device buffer shared by a tensor and its views; freed when the last holder lets go. */
export class Storage {
  private refs = 1;

  constructor(
    readonly engine: Engine,
    readonly handle: Handle,
    readonly bytes: number,
  ) {}

  static allocate(engine: Engine, bytes: number): Storage {
    return new Storage(engine, engine.alloc(bytes), bytes);
  }

  retain(): this {
    if (this.refs <= 0) throw new Error('internal: retain of a freed storage');
    this.refs++;
    return this;
  }

  release(): void {
    if (this.refs <= 0) return;
    if (--this.refs === 0) this.engine.free(this.handle);
  }

  get alive(): boolean {
    return this.refs > 0;
  }

  /** How many tensors (a tensor and its views) hold this buffer. */
  get holders(): number {
    return this.refs;
  }
}
