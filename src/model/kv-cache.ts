/**
 * State for incremental decoding: per layer, the keys and values of every position so far (raw, as
 * projected — rotary, xPos and the key scale are applied inside attention from positions) and the
 * token-shift inputs of the last positions of both sub-layers. Buffers grow by doubling; the cache
 * owns its tensors until `dispose()`.
 */
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { formatShape } from '../tensor/shape.js';
import { keep } from '../tensor/scope.js';
import { zeros } from '../ops/creation.js';
import { narrow } from '../ops/layout.js';
import type { AndromedaConfig } from './config.js';

export interface KVCacheOptions {
  device?: string;
  dtype?: DType;
  /** Initial capacity in positions (grows as needed). Default 256. */
  capacity?: number;
}

export type ShiftSlot = 'attention' | 'feedForward';

export class LayerKVCache {
  private keyBuffer: Tensor | null = null;
  private valueBuffer: Tensor | null = null;
  private capacity = 0;
  /** Positions stored. */
  length = 0;
  private readonly shiftHistory = new Map<ShiftSlot, Tensor>();

  constructor(
    private readonly batch: number,
    private readonly kvHeads: number,
    private readonly headDim: number,
    private readonly initialCapacity: number,
    private readonly shifts: number,
    private readonly dim: number,
    private readonly dtype: DType,
    private readonly device: string | undefined,
  ) {}

  /**
   * Appends k, v [batch, kvHeads, n, headDim]; returns views of all keys and values so far and the
   * index of the first new position (the queries' offset).
   */
  append(k: Tensor, v: Tensor): { keys: Tensor; values: Tensor; queryOffset: number } {
    const expected = [this.batch, this.kvHeads, k.shape[2]!, this.headDim];
    if (k.rank !== 4 || k.shape.some((d, i) => d !== expected[i]) || v.shape.some((d, i) => d !== k.shape[i])) {
      throw new RangeError(
        `KV cache: keys ${formatShape(k.shape)} / values ${formatShape(v.shape)} do not match the ` +
          `cache's ${formatShape(expected)}`,
      );
    }
    const n = k.shape[2]!;
    const offset = this.length;
    this.ensureCapacity(offset + n);
    for (const [src, buffer] of [
      [k, this.keyBuffer!],
      [v, this.valueBuffer!],
    ] as const) {
      const slot = narrow(buffer, 2, offset, n);
      if (slot.size > 0) src.engine.copy(src.strided('KV cache'), slot.strided(), src.shape);
      slot.dispose();
    }
    this.length = offset + n;
    return {
      keys: narrow(this.keyBuffer!, 2, 0, this.length),
      values: narrow(this.valueBuffer!, 2, 0, this.length),
      queryOffset: offset,
    };
  }

  private ensureCapacity(needed: number): void {
    if (needed <= this.capacity) return;
    let capacity = Math.max(this.capacity, this.initialCapacity, 1);
    while (capacity < needed) capacity *= 2;
    const grow = (old: Tensor | null): Tensor => {
      const fresh = keep(zeros([this.batch, this.kvHeads, capacity, this.headDim], this.dtype, this.device));
      if (old) {
        const dst = narrow(fresh, 2, 0, this.length);
        if (dst.size > 0) old.engine.copy(narrow(old, 2, 0, this.length).strided(), dst.strided(), dst.shape);
        dst.dispose();
        old.dispose();
      }
      return fresh;
    };
    this.keyBuffer = grow(this.keyBuffer);
    this.valueBuffer = grow(this.valueBuffer);
    this.capacity = capacity;
  }

  /** The token-shift inputs of the previous positions for one sub-layer, [batch, shifts, dim]. */
  history(slot: ShiftSlot): Tensor {
    let h = this.shiftHistory.get(slot);
    if (!h) {
      h = keep(zeros([this.batch, this.shifts, this.dim], this.dtype, this.device));
      this.shiftHistory.set(slot, h);
    }
    return h;
  }

  setHistory(slot: ShiftSlot, next: Tensor): void {
    const old = this.shiftHistory.get(slot);
    this.shiftHistory.set(slot, keep(next));
    if (old && old !== next) old.dispose();
  }

  /** Forgets every position (the buffers are kept for the positions written next). */
  clear(): void {
    for (const t of this.shiftHistory.values()) t.dispose();
    this.shiftHistory.clear();
    this.length = 0;
  }

  dispose(): void {
    this.keyBuffer?.dispose();
    this.valueBuffer?.dispose();
    for (const t of this.shiftHistory.values()) t.dispose();
    this.shiftHistory.clear();
    this.keyBuffer = this.valueBuffer = null;
    this.capacity = this.length = 0;
  }
}

export class KVCache {
  readonly layers: LayerKVCache[];
  /**
   * The token ids cached so far, per row, for models whose cache can go stale (LongRoPE: see
   * Andromeda.hiddenStates); null for the others.
   */
  private readonly tokenRows: number[][] | null;

  constructor(
    config: AndromedaConfig,
    readonly batch: number,
    o: KVCacheOptions = {},
  ) {
    if (!Number.isInteger(batch) || batch < 1)
      throw new RangeError(`KV cache: batch ${batch} must be a positive integer`);
    const capacity = o.capacity ?? 256;
    this.tokenRows = config.rotary?.longRope ? Array.from({ length: batch }, () => []) : null;
    this.layers = Array.from(
      { length: config.depth },
      () =>
        new LayerKVCache(
          batch,
          config.kvHeads,
          config.headDim,
          capacity,
          config.shiftTokens,
          config.dim,
          o.dtype ?? 'float32',
          o.device,
        ),
    );
  }

  /** Positions cached so far. */
  get length(): number {
    return this.layers[0]?.length ?? 0;
  }

  /** Records the ids of `n` new positions per row ([batch, n] row-major), where this cache keeps them. */
  recordTokens(tokens: Int32Array, n: number): void {
    if (!this.tokenRows) return;
    this.tokenRows.forEach((row, b) => row.push(...tokens.subarray(b * n, (b + 1) * n)));
  }

  /** Every recorded id, [batch, length] row-major (see recordTokens). */
  recordedTokens(): Int32Array {
    if (!this.tokenRows) throw new Error('internal: this KV cache does not record its tokens');
    return Int32Array.from(this.tokenRows.flat());
  }

  /** Forgets every cached position of every layer (recorded tokens are kept). */
  clearPositions(): void {
    for (const layer of this.layers) layer.clear();
  }

  dispose(): void {
    for (const layer of this.layers) layer.dispose();
  }
}
