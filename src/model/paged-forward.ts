/**
 * The kernels of one paged step as the layers see them: the step's batch bound to the cache's pools, the
 * token shift through the tails, K/V written to the pools, and attention over the pools (src/ops/paged.ts).
 * One `PagedForward` serves every layer of a step; `layer(pools)` adds that layer's pools.
 *
 * Attention takes one of two routes per sequence, with the same values:
 *   paged   pagedAttention over the block tables: one launch for all such sequences.
 *   dense   the sequence's keys and values gathered from the pools into contiguous rows, then the dense
 *           `attention` op with queryOffset. For sequences with many query rows (prefill chunks) on an
 *           engine whose paged kernel parallelises over few queries (CUDA), the dense kernel is the fast one.
 * A step in which every sequence takes the paged route (every decode step) uploads nothing and reads nothing
 * back, so it can be captured as a CUDA graph. The dense route needs the batch's host metadata.
 */
import { Tensor } from '../tensor/tensor.js';
import { attention } from '../ops/attention.js';
import { narrow, permute, reshape } from '../ops/layout.js';
import { emptyLike } from '../ops/util.js';
import {
  addNormShift,
  pagedAttention,
  pagedTokenShiftAndTailWrite,
  scatterRows,
  writeHeadRows,
  type PagedBatch,
} from '../ops/paged.js';
import { HEAD_NORM_MAX_DIM } from '../engine/engine.js';
import { keep, trackTensor } from '../tensor/scope.js';
import type { AddNormRunner } from './residual.js';
import type { RotarySettings } from './rotary.js';
import type { ShiftSlot } from './kv-cache.js';
import type { PagedKVCache, PagedLayerPools } from './paged-kv-cache.js';
import type { PagedBatchHost, PagedStep } from './paged-step.js';

export interface PagedForwardOptions {
  /**
   * Sequences with at least this many query rows this step take the dense attention route (when the batch
   * carries its host metadata). Default: 64 on CUDA, whose paged kernel is made for few query rows; never on
   * the CPU engine, whose paged kernel is as fast for any number. 1 sends every sequence the dense way.
   */
  denseAttentionMinQueries?: number;
}

/** Query rows from which a CUDA step sends a sequence to the dense attention (a prefill chunk, not a decode). */
export const CUDA_DENSE_ATTENTION_MIN_QUERIES = 64;

/** What a layer's attention brings to the kernels: its heads and position features. */
export interface PagedAttentionFeatures {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly scale: number;
  /** [heads, headDim] per-head key scale (qk-norm dim scale), or null. */
  readonly keyScale: Tensor | null;
  readonly rotary: RotarySettings | null;
  /** One ALiBi slope per head (0: none), or null. */
  readonly slopes: Float64Array | null;
  /** This layer's sliding window, or null. */
  readonly window: number | null;
  /** Attention logit soft-cap, or null. */
  readonly softCap: number | null;
}

/** A sequence that takes the dense route: its query rows and the pool rows of its keys. */
interface DenseSequence {
  readonly firstRow: number;
  readonly queries: number;
  readonly keys: number;
  /** int32 [keys]: pool row of every position 0 .. keys − 1. */
  readonly poolRows: Tensor;
}

/** The sequences that take the paged route when others take the dense one: their rows gathered into a sub-batch. */
interface PagedSubBatch {
  /** int32 [rows]: the step rows of the sub-batch, in its order. */
  readonly stepRows: Tensor;
  readonly batch: PagedBatch;
}

/**
 * Rows `rows` (int32 [R] on x's device) of x [T, ...row] → [R, ...row]. Nothing is read back: rows outside
 * [0, T) give zeros (the caller's indices are trusted, as a captured graph's must be).
 */
export function gatherRows(x: Tensor, rows: Tensor): Tensor {
  const count = x.shape[0]!;
  const out = Tensor.empty([rows.size, ...x.shape.slice(1)], x.dtype, x.device);
  const width = count > 0 ? x.size / count : 0;
  if (out.size > 0) x.engine.embeddingUnchecked(x.dense(), rows.dense(), out.dense(), rows.size, width, count);
  return out;
}

export class PagedForward {
  /** The step's batch in the form the paged ops take. */
  readonly batch: PagedBatch;
  private readonly dense: DenseSequence[] = [];
  /** null: every sequence that takes the paged route is in `batch` as it is. */
  private readonly subBatch: PagedSubBatch | null = null;
  /** False when every sequence takes the dense route. */
  private readonly anyPaged: boolean = true;
  /** Tensors this object uploaded. */
  private readonly owned: Tensor[] = [];

  constructor(
    readonly step: PagedStep,
    readonly cache: PagedKVCache,
    o: PagedForwardOptions = {},
  ) {
    const { host, queryStart, contextLens, blockTables, maxQueryLen, maxContextLen } = step.batch;
    this.batch = { queryStart, contextLens, blockTables, maxQueryLen, maxContextLen, blockSize: cache.blockSize };
    const threshold = o.denseAttentionMinQueries ?? defaultDenseMinQueries(cache.device);
    if (!(threshold >= 1))
      throw new RangeError(`forwardPaged: denseAttentionMinQueries ${threshold} must be at least 1`);
    if (!host || maxQueryLen < threshold) return;
    const numSeqs = host.contextLens.length;
    const denseIds: number[] = [];
    for (let s = 0; s < numSeqs; s++) if (host.queryStart[s + 1]! - host.queryStart[s]! >= threshold) denseIds.push(s);
    if (denseIds.length === 0) return;
    try {
      for (const s of denseIds) this.dense.push(this.denseSequence(host, s));
      const pagedIds = Array.from({ length: numSeqs }, (_, s) => s).filter((s) => !denseIds.includes(s));
      this.anyPaged = pagedIds.length > 0;
      if (this.anyPaged) this.subBatch = this.pagedSubBatch(host, pagedIds);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** The view of the step one layer works through. */
  layer(pools: PagedLayerPools): PagedLayer {
    return new PagedLayer(this, pools);
  }

  dispose(): void {
    for (const t of this.owned) t.dispose();
    this.owned.length = 0;
    for (const { shifted } of this.preShifted.values()) shifted.dispose();
    this.preShifted.clear();
  }

  /** Sub-layer inputs token-shifted in a norm's pass (addNormShift), by their tail pool: what `shift` hands back. */
  private readonly preShifted = new Map<Tensor, { from: Tensor; shifted: Tensor }>();

  /** Holds `shifted`, the token shift of `from` through `tails`, outside every scope until `takeShifted`. */
  holdShifted(tails: Tensor, from: Tensor, shifted: Tensor): void {
    this.preShifted.get(tails)?.shifted.dispose();
    this.preShifted.set(tails, { from, shifted: keep(shifted) });
  }

  /** The held shift of `h` through `tails`, moved into the current scope; null when `h` has none. */
  takeShifted(tails: Tensor, h: Tensor): Tensor | null {
    const held = this.preShifted.get(tails);
    if (!held || held.from !== h) return null;
    this.preShifted.delete(tails);
    trackTensor(held.shifted);
    return held.shifted;
  }

  /**
   * Attention of the step's queries q [T, heads, headDim] over the pools (this step's K/V already written),
   * → [T, heads, headDim].
   */
  attend(q: Tensor, keys: Tensor, values: Tensor, f: PagedAttentionFeatures): Tensor {
    const options = {
      scale: f.scale,
      keyScale: f.keyScale,
      rotary: f.rotary,
      alibiSlopes: f.slopes,
      window: f.window,
      softCap: f.softCap,
      // A step's layout gives every row to a sequence (padding rows to a one-position sequence in a scratch block).
      everyRowOwned: true,
    };
    if (this.dense.length === 0) return pagedAttention(q, keys, values, this.batch, options);
    const out = emptyLike(q);
    if (this.subBatch) {
      const { stepRows, batch } = this.subBatch;
      const subQ = gatherRows(q, stepRows);
      const subOut = pagedAttention(subQ, keys, values, batch, options);
      scatterRows(subOut, stepRows, out);
      subQ.dispose();
      subOut.dispose();
    }
    for (const d of this.dense) this.attendDense(q, keys, values, out, f, d);
    return out;
  }

  private attendDense(
    q: Tensor,
    keyPool: Tensor,
    valuePool: Tensor,
    out: Tensor,
    f: PagedAttentionFeatures,
    d: DenseSequence,
  ): void {
    const toHeads = (t: Tensor): Tensor => permute(t, [0, 2, 1, 3]);
    const gather = (pool: Tensor): Tensor =>
      gatherRows(reshape(pool, [this.cache.capacity, f.kvHeads, f.headDim]), d.poolRows);
    const k = gather(keyPool),
      v = gather(valuePool);
    const queries = reshape(narrow(q, 0, d.firstRow, d.queries), [1, d.queries, f.heads, f.headDim]);
    const result = attention(
      toHeads(queries),
      toHeads(reshape(k, [1, d.keys, f.kvHeads, f.headDim])),
      toHeads(reshape(v, [1, d.keys, f.kvHeads, f.headDim])),
      {
        scale: f.scale,
        causal: true,
        queryOffset: d.keys - d.queries,
        keyScale: f.keyScale,
        rotary: f.rotary,
        alibiSlopes: f.slopes,
        window: f.window,
        softCap: f.softCap,
      },
    );
    const rows = reshape(narrow(out, 0, d.firstRow, d.queries), [1, d.queries, f.heads, f.headDim]);
    out.engine.copy(toHeads(result).strided(), rows.strided(), rows.shape);
    for (const t of [k, v, result]) t.dispose();
  }

  private upload(values: Int32Array, shape: number[]): Tensor {
    const t = Tensor.fromArray(values, shape, 'int32', this.cache.device);
    this.owned.push(t);
    return t;
  }

  private denseSequence(host: PagedBatchHost, s: number): DenseSequence {
    const { blockSize, numBlocks } = this.cache;
    const width = this.batch.blockTables.shape[1]!;
    const keys = host.contextLens[s]!;
    if (keys > width * blockSize)
      throw new RangeError(
        `forwardPaged: sequence ${s} has ${keys} positions but its block table holds ${width} blocks of ${blockSize}`,
      );
    const poolRows = new Int32Array(keys);
    for (let j = 0; j < keys; j++) {
      const block = host.blockTables[s * width + Math.floor(j / blockSize)]!;
      if (block < 0 || block >= numBlocks)
        throw new RangeError(`forwardPaged: sequence ${s} reads block ${block}, outside the pool's ${numBlocks}`);
      poolRows[j] = block * blockSize + (j % blockSize);
    }
    const firstRow = host.queryStart[s]!;
    return { firstRow, queries: host.queryStart[s + 1]! - firstRow, keys, poolRows: this.upload(poolRows, [keys]) };
  }

  private pagedSubBatch(host: PagedBatchHost, sequences: number[]): PagedSubBatch {
    const width = this.batch.blockTables.shape[1]!;
    const queryStart = new Int32Array(sequences.length + 1);
    const contextLens = new Int32Array(sequences.length);
    const blockTables = new Int32Array(sequences.length * width);
    const stepRows: number[] = [];
    let maxQueryLen = 1,
      maxContextLen = 1;
    sequences.forEach((s, i) => {
      const first = host.queryStart[s]!,
        end = host.queryStart[s + 1]!;
      for (let r = first; r < end; r++) stepRows.push(r);
      queryStart[i + 1] = stepRows.length;
      contextLens[i] = host.contextLens[s]!;
      blockTables.set(host.blockTables.subarray(s * width, (s + 1) * width), i * width);
      maxQueryLen = Math.max(maxQueryLen, end - first);
      maxContextLen = Math.max(maxContextLen, contextLens[i]!);
    });
    return {
      stepRows: this.upload(Int32Array.from(stepRows), [stepRows.length]),
      batch: {
        blockSize: this.cache.blockSize,
        maxQueryLen,
        maxContextLen,
        queryStart: this.upload(queryStart, [queryStart.length]),
        contextLens: this.upload(contextLens, [contextLens.length]),
        blockTables: this.upload(blockTables, [sequences.length, width]),
      },
    };
  }
}

/** One layer's part of a step: its pools and the kernels that read and write them. */
export class PagedLayer {
  constructor(
    private readonly step: PagedForward,
    private readonly pools: PagedLayerPools,
  ) {}

  /**
   * Token shift of a sub-layer's input h [T, dim] through its tails, then h stored as the tails of its
   * positions (after the shift: a row written may take a slot that an earlier row of the step still reads).
   */
  shift(h: Tensor, slot: ShiftSlot): Tensor {
    const tails = this.pools.tails?.[slot];
    if (!tails) return h;
    return (
      this.step.takeShifted(tails, h) ?? pagedTokenShiftAndTailWrite(h, tails, this.step.batch, this.step.cache.shifts)
    );
  }

  /**
   * How the add + norm whose output is sub-layer `slot`'s input runs: in a decode step (one row per sequence) with a
   * tail pool for the slot, the output's token shift and tail write ride in the norm's pass (addNormShift: one
   * launch instead of two) and `shift` of that output hands the result back; otherwise undefined (the fused op).
   */
  addNormFor(slot: ShiftSlot): AddNormRunner | undefined {
    const tails = this.pools.tails?.[slot];
    const batch = this.step.batch;
    if (!tails || batch.maxQueryLen > 1) return undefined;
    return (branch, x, options, keepSum) => {
      const r = addNormShift(branch, x, options, keepSum, tails, batch, this.step.cache.shifts);
      this.step.holdShifted(tails, r.out, r.shifted);
      return r;
    };
  }

  /**
   * This step's attention inputs: k and v [T, kvHeads, headDim] to the pool rows of their positions, and q
   * [T, heads, headDim] back for `attend` — with `qkNorm`, q and k head-normed on the way (q scaled by its weight),
   * all in one launch (writeHeadRows); head dims past HEAD_NORM_MAX_DIM, which writeHeadRows does not take, come
   * without qkNorm (the caller norms them) and are scattered apart.
   */
  writeStepInputs(q: Tensor, k: Tensor, v: Tensor, qkNorm: { queryWeight: Tensor | null } | null): Tensor {
    const slots = this.step.step.slots;
    if (q.shape[2]! > HEAD_NORM_MAX_DIM) {
      if (qkNorm) throw new RangeError(`writeStepInputs: qk-norm of head dim ${q.shape[2]} is the caller's`);
      scatterRows(k, slots, this.pools.keys);
      scatterRows(v, slots, this.pools.values);
      return q;
    }
    const normed = qkNorm ? emptyLike(q) : q;
    writeHeadRows([
      ...(qkNorm ? [{ x: q, into: normed, at: null, norm: { weight: qkNorm.queryWeight } }] : []),
      { x: k, into: this.pools.keys, at: slots, norm: qkNorm ? { weight: null } : null },
      { x: v, into: this.pools.values, at: slots, norm: null },
    ]);
    return normed;
  }

  /** Attention of q [T, heads, headDim] over this layer's pools → [T, heads, headDim]. */
  attend(q: Tensor, features: PagedAttentionFeatures): Tensor {
    return this.step.attend(q, this.pools.keys, this.pools.values, features);
  }
}

function defaultDenseMinQueries(device: string): number {
  return device.startsWith('cuda') ? CUDA_DENSE_ATTENTION_MIN_QUERIES : Infinity;
}
