/**
 * The paged KV cache of the inference engine (docs: the inference contract, "Paged KV cache layout"):
 * one pool of `numBlocks` blocks of `blockSize` positions for the whole model. Per layer:
 *
 *   keys, values   [numBlocks, blockSize, kvHeads, headDim]   keys as projected (after qk-norm's L2
 *                  normalisation; key scale, rotary and xPos are applied by attention from positions)
 *   tails          [numBlocks, ring, dim] per sub-layer (attention, feed-forward): the token-shift input
 *                  of position p at [block of p, p % ring]; none when the model shifts no tokens
 *
 * The cache owns the pools and nothing else: which blocks a sequence holds is the block manager's
 * business, and memory is accounted in blocks (`bytesPerBlock`, `blocksForBudget`).
 */
import { Tensor } from '../tensor/tensor.js';
import { DTYPE_BYTES, type DType } from '../tensor/dtype.js';
import { keep } from '../tensor/scope.js';
import { zeros } from '../ops/creation.js';
import type { AndromedaConfig } from './config.js';
import type { ShiftSlot } from './kv-cache.js';

/** Largest block size: a power of two the paged kernels tile with. */
export const MAX_BLOCK_SIZE = 256;
export const DEFAULT_BLOCK_SIZE = 32;

export interface PagedKVCacheLayout {
  /** Positions per block: a power of two ≤ 256 (default 32). */
  blockSize?: number;
  /**
   * Token-shift tail slots per block: at least the model's shiftTokens (the default). Speculative decoding that
   * verifies k draft tokens needs shiftTokens + k, so rejected positions never overwrite a slot still read.
   */
  ring?: number;
  dtype?: DType;
}

export interface PagedKVCacheOptions extends PagedKVCacheLayout {
  device?: string;
}

/** One layer's pools. */
export interface PagedLayerPools {
  readonly keys: Tensor;
  readonly values: Tensor;
  /** Token-shift tails per sub-layer, or null when the model shifts no tokens. */
  readonly tails: Readonly<Record<ShiftSlot, Tensor>> | null;
}

interface ResolvedLayout {
  blockSize: number;
  ring: number;
  dtype: DType;
}

function resolveLayout(config: AndromedaConfig, o: PagedKVCacheLayout, what: string): ResolvedLayout {
  const blockSize = o.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > MAX_BLOCK_SIZE || blockSize & (blockSize - 1))
    throw new RangeError(`${what}: blockSize ${blockSize} must be a power of two from 1 to ${MAX_BLOCK_SIZE}`);
  const shifts = config.shiftTokens;
  const ring = shifts === 0 ? 0 : (o.ring ?? shifts);
  if (shifts > 0 && (!Number.isInteger(ring) || ring < shifts))
    throw new RangeError(`${what}: ring ${o.ring} must be an integer ≥ the model's shiftTokens ${shifts}`);
  const dtype = o.dtype ?? 'float32';
  if (!(dtype in DTYPE_BYTES) || dtype === 'int32')
    throw new TypeError(`${what}: dtype must be a float dtype, got '${String(dtype)}'`);
  return { blockSize, ring, dtype };
}

/** Bytes one block takes in every layer's pools (keys, values and both sub-layers' tails). */
function blockBytes(config: AndromedaConfig, layout: ResolvedLayout): number {
  const kv = 2 * layout.blockSize * config.kvHeads * config.headDim;
  const tails = layout.ring > 0 ? 2 * layout.ring * config.dim : 0;
  return config.depth * (kv + tails) * DTYPE_BYTES[layout.dtype];
}

export class PagedKVCache {
  readonly numBlocks: number;
  readonly blockSize: number;
  /** Tail slots per block (0 when the model shifts no tokens). */
  readonly ring: number;
  readonly shifts: number;
  readonly dtype: DType;
  readonly device: string;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly dim: number;
  readonly bytesPerBlock: number;
  private pools: PagedLayerPools[];

  /** Pools of `numBlocks` blocks for a model of `config` (zero-filled, so no block ever holds stale non-numbers). */
  constructor(config: AndromedaConfig, numBlocks: number, o: PagedKVCacheOptions = {}) {
    const layout = resolveLayout(config, o, 'PagedKVCache');
    if (!Number.isInteger(numBlocks) || numBlocks < 1)
      throw new RangeError(`PagedKVCache: numBlocks ${numBlocks} must be a positive integer`);
    // Pool rows are int32 indices in every kernel (slots, gathers).
    if (numBlocks * layout.blockSize > 2 ** 31 - 1)
      throw new RangeError(
        `PagedKVCache: ${numBlocks} blocks of ${layout.blockSize} positions exceed the int32 row indices of the pools`,
      );
    this.numBlocks = numBlocks;
    this.blockSize = layout.blockSize;
    this.ring = layout.ring;
    this.shifts = config.shiftTokens;
    this.dtype = layout.dtype;
    this.kvHeads = config.kvHeads;
    this.headDim = config.headDim;
    this.dim = config.dim;
    this.bytesPerBlock = blockBytes(config, layout);
    const poolShape = [numBlocks, this.blockSize, this.kvHeads, this.headDim];
    const tailShape = [numBlocks, this.ring, this.dim];
    Tensor.checkAllocation(
      numBlocks * this.blockSize * this.kvHeads * this.headDim,
      this.dtype,
      o.device,
      'PagedKVCache',
    );
    this.pools = [];
    try {
      for (let layer = 0; layer < config.depth; layer++) {
        const pool = (shape: number[]): Tensor => keep(zeros(shape, this.dtype, o.device));
        this.pools.push({
          keys: pool(poolShape),
          values: pool(poolShape),
          tails: this.ring > 0 ? { attention: pool(tailShape), feedForward: pool(tailShape) } : null,
        });
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
    this.device = this.pools[0]?.keys.device ?? o.device ?? 'cpu';
  }

  /** Bytes one block takes across all layers for a model of `config` with this layout. */
  static bytesPerBlock(config: AndromedaConfig, o: PagedKVCacheLayout = {}): number {
    return blockBytes(config, resolveLayout(config, o, 'PagedKVCache.bytesPerBlock'));
  }

  /** How many whole blocks fit in `bytes` (0 when not even one does). */
  static blocksForBudget(config: AndromedaConfig, bytes: number, o: PagedKVCacheLayout = {}): number {
    if (!Number.isFinite(bytes) || bytes < 0)
      throw new RangeError(`PagedKVCache.blocksForBudget: byte budget ${bytes} must be a finite number ≥ 0`);
    return Math.floor(bytes / PagedKVCache.bytesPerBlock(config, o));
  }

  /** Positions the pool holds in all. */
  get capacity(): number {
    return this.numBlocks * this.blockSize;
  }

  get depth(): number {
    return this.pools.length;
  }

  /** The pools of one layer. */
  layer(index: number): PagedLayerPools {
    const pools = this.pools[index];
    if (!pools) {
      const state = this.pools.length === 0 ? 'disposed' : `has ${this.pools.length} layers`;
      throw new RangeError(`PagedKVCache: no layer ${index} (the cache ${state})`);
    }
    return pools;
  }

  get isDisposed(): boolean {
    return this.pools.length === 0;
  }

  dispose(): void {
    for (const p of this.pools) {
      p.keys.dispose();
      p.values.dispose();
      if (p.tails) for (const t of Object.values(p.tails)) t.dispose();
    }
    this.pools = [];
  }
}
