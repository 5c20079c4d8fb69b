// The DeviceGraph both native engines hand out: replay until disposed, then a clear error; disposal once.
import type { DeviceGraph } from './engine.js';

export class RecordedGraph implements DeviceGraph {
  #replay: (() => void) | null;
  readonly #release: () => void;

  constructor(
    private readonly device: string,
    replay: () => void,
    release: () => void,
  ) {
    this.#replay = replay;
    this.#release = release;
  }

  replay(): void {
    if (!this.#replay) throw new Error(`${this.device} graph: replay() after dispose()`);
    this.#replay();
  }

  dispose(): void {
    if (!this.#replay) return;
    this.#replay = null;
    this.#release();
  }
}
