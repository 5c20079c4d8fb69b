/**
 * The kernels of one paged step as the layers see them: the batch's metadata bound to the cache's pools,
 * the token shift through the tails, K/V written to the pools, and attention over the pools. One
 * `PagedForward` serves every layer of a step; `layer(i)` adds that layer's pools.
 *
 * Attention takes one of two routes per sequence, with the same values:
 *   paged   Engine.pagedAttention over the block tables: one launch for all such sequences.
 *   dense   the sequence's keys and values gathered from the pools into contiguous rows, then the dense
 *           `attention` op with queryOffset. For sequences with many query rows (prefill chunks) on an
 *           engine whose paged kernel parallelises over few queries (CUDA), the dense kernel is the fast one.
 * A step in which every sequence takes the paged route (every decode step) uploads nothing and reads nothing
 * back, so it can be captured as a CUDA graph. The dense route needs the batch's host metadata.
 */
import { Tensor } from '../tensor/tensor.js';
import type { PagedAttentionArgs, PagedBatchArgs } from '../engine/engine.js';
import { attention } from '../ops/attention.js';
import { narrow, permute, reshape } from '../ops/layout.js';
import { contiguousRaw } from '../ops/raw.js';
import { emptyLike } from '../ops/util.js';
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
  readonly rows: number;
  /** int32 [rows]: the step rows of the sub-batch, in its order. */
  readonly stepRows: Tensor;
  readonly args: PagedBatchArgs;
}

export class PagedForward {
  /** The step's rows (T). */
  readonly rows: number;
  readonly args: PagedBatchArgs;
  private readonly dense: DenseSequence[] = [];
  /** null: every sequence takes the paged route over the whole step. */
  private readonly subBatch: PagedSubBatch | null = null;
  /** False when no sequence takes the paged route. */
  private readonly anyPaged: boolean = true;
  /** Tensors this object uploaded. */
  private readonly owned: Tensor[] = [];

  constructor(
    readonly step: PagedStep,
    readonly cache: PagedKVCache,
    rows: number,
    o: PagedForwardOptions = {},
  ) {
    const { batch } = step;
    this.rows = rows;
    this.args = {
      numSeqs: batch.numSeqs,
      blockSize: cache.blockSize,
      numBlocks: cache.numBlocks,
      maxBlocksPerSeq: batch.maxBlocksPerSeq,
      maxQueryLen: batch.maxQueryLen,
      maxContextLen: batch.maxContextLen,
      queryStart: batch.queryStart.dense('forwardPaged'),
      contextLens: batch.contextLens.dense('forwardPaged'),
      blockTables: batch.blockTables.dense('forwardPaged'),
    };
    const threshold = o.denseAttentionMinQueries ?? defaultDenseMinQueries(cache.device);
    if (!(threshold >= 1))
      throw new RangeError(`forwardPaged: denseAttentionMinQueries ${threshold} must be at least 1`);
    const host = batch.host;
    if (!host || batch.maxQueryLen < threshold) return;
    const denseIds: number[] = [];
    for (let s = 0; s < batch.numSeqs; s++)
      if (host.queryStart[s + 1]! - host.queryStart[s]! >= threshold) denseIds.push(s);
    if (denseIds.length === 0) return;
    try {
      for (const s of denseIds) this.dense.push(this.denseSequence(host, s));
      const pagedIds = Array.from({ length: batch.numSeqs }, (_, s) => s).filter((s) => !denseIds.includes(s));
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
  }

  /**
   * Attention of the step's queries q [T, heads, headDim] over the pools (this step's K/V already written),
   * → [T, heads, headDim].
   */
  attend(q: Tensor, keys: Tensor, values: Tensor, f: PagedAttentionFeatures): Tensor {
    const out = emptyLike(q);
    const temps: Tensor[] = [];
    try {
      if (this.anyPaged) {
        let keyScale: Tensor | null = null;
        if (f.keyScale) {
          // The kernels take the key scale in float32 whatever the model's dtype.
          keyScale =
            f.keyScale.dtype === 'float32' && f.keyScale.isContiguous()
              ? f.keyScale
              : contiguousRaw(f.keyScale, 'float32');
          if (keyScale !== f.keyScale) temps.push(keyScale);
        }
        if (this.subBatch) this.attendSubBatch(q, keys, values, out, f, keyScale, temps);
        else
          q.engine.pagedAttention(
            q.dense('forwardPaged'),
            keys.dense(),
            values.dense(),
            out.dense(),
            this.rows,
            pagedAttentionArgs(this.args, f, keyScale),
          );
      }
      for (const d of this.dense) this.attendDense(q, keys, values, out, f, d);
    } finally {
      for (const t of temps) t.dispose();
    }
    return out;
  }

  private attendSubBatch(
    q: Tensor,
    keys: Tensor,
    values: Tensor,
    out: Tensor,
    f: PagedAttentionFeatures,
    keyScale: Tensor | null,
    temps: Tensor[],
  ): void {
    const sub = this.subBatch!;
    const width = f.heads * f.headDim;
    const engine = q.engine;
    const subQ = Tensor.empty([sub.rows, f.heads, f.headDim], q.dtype, q.device);
    const subOut = emptyLike(subQ);
    temps.push(subQ, subOut);
    engine.embeddingUnchecked(q.dense(), sub.stepRows.dense(), subQ.dense(), sub.rows, width, this.rows);
    engine.pagedAttention(
      subQ.dense(),
      keys.dense(),
      values.dense(),
      subOut.dense(),
      sub.rows,
      pagedAttentionArgs(sub.args, f, keyScale),
    );
    engine.scatterRows(subOut.dense(), sub.stepRows.dense(), out.dense(), sub.rows, width, this.rows);
  }

  private attendDense(
    q: Tensor,
    keyPool: Tensor,
    valuePool: Tensor,
    out: Tensor,
    f: PagedAttentionFeatures,
    d: DenseSequence,
  ): void {
    const width = f.kvHeads * f.headDim;
    const poolRows = this.cache.capacity;
    const gather = (pool: Tensor): Tensor => {
      const rows = Tensor.empty([1, d.keys, f.kvHeads, f.headDim], pool.dtype, pool.device);
      pool.engine.embeddingUnchecked(pool.dense(), d.poolRows.dense(), rows.dense(), d.keys, width, poolRows);
      return rows;
    };
    const k = gather(keyPool),
      v = gather(valuePool);
    const queries = reshape(narrow(q, 0, d.firstRow, d.queries), [1, d.queries, f.heads, f.headDim]);
    const toHeads = (t: Tensor): Tensor => permute(t, [0, 2, 1, 3]);
    const result = attention(toHeads(queries), toHeads(k), toHeads(v), {
      scale: f.scale,
      causal: true,
      queryOffset: d.keys - d.queries,
      keyScale: f.keyScale,
      rotary: f.rotary,
      alibiSlopes: f.slopes,
    });
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
    const width = this.step.batch.maxBlocksPerSeq;
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
    const width = this.step.batch.maxBlocksPerSeq;
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
      rows: stepRows.length,
      stepRows: this.upload(Int32Array.from(stepRows), [stepRows.length]),
      args: {
        ...this.args,
        numSeqs: sequences.length,
        maxQueryLen,
        maxContextLen,
        queryStart: this.upload(queryStart, [queryStart.length]).dense(),
        contextLens: this.upload(contextLens, [contextLens.length]).dense(),
        blockTables: this.upload(blockTables, [sequences.length, width]).dense(),
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
    const { ring, shifts, dim } = this.step.cache;
    const x = h.isContiguous() ? h : contiguousRaw(h);
    const out = emptyLike(x);
    const engine = x.engine;
    engine.pagedTokenShift(
      x.dense('forwardPaged'),
      tails.dense(),
      out.dense(),
      this.step.rows,
      dim,
      shifts,
      ring,
      this.step.args,
    );
    engine.pagedTailWrite(x.dense(), tails.dense(), this.step.rows, dim, ring, this.step.args);
    if (x !== h) x.dispose();
    return out;
  }

  /** Writes this step's keys and values, each [T, kvHeads, headDim], to the pool rows of their positions. */
  writeKeysValues(k: Tensor, v: Tensor): void {
    const { capacity } = this.step.cache;
    for (const [rows, pool] of [
      [k, this.pools.keys],
      [v, this.pools.values],
    ] as const) {
      const src = rows.isContiguous() ? rows : contiguousRaw(rows);
      const width = src.size / this.step.rows;
      src.engine.scatterRows(
        src.dense('forwardPaged'),
        this.step.step.slots.dense(),
        pool.dense(),
        this.step.rows,
        width,
        capacity,
      );
      if (src !== rows) src.dispose();
    }
  }

  /** Attention of q [T, heads, headDim] over this layer's pools → [T, heads, headDim]. */
  attend(q: Tensor, features: PagedAttentionFeatures): Tensor {
    const x = q.isContiguous() ? q : contiguousRaw(q);
    const out = this.step.attend(x, this.pools.keys, this.pools.values, features);
    if (x !== q) x.dispose();
    return out;
  }
}

function defaultDenseMinQueries(device: string): number {
  return device.startsWith('cuda') ? CUDA_DENSE_ATTENTION_MIN_QUERIES : Infinity;
}

function pagedAttentionArgs(
  batch: PagedBatchArgs,
  f: PagedAttentionFeatures,
  keyScale: Tensor | null,
): PagedAttentionArgs {
  const slopes = f.slopes && f.slopes.some((s) => s !== 0) ? Float32Array.from(f.slopes) : null;
  return {
    ...batch,
    heads: f.heads,
    kvHeads: f.kvHeads,
    headDim: f.headDim,
    scale: f.scale,
    alibiSlopes: slopes,
    rotaryDim: f.rotary?.dim ?? 0,
    rotaryInvFreq: f.rotary ? Float32Array.from(f.rotary.invFreq) : null,
    xposScaleBase: f.rotary?.xposScaleBase ?? 0,
    keyScale: keyScale?.dense('forwardPaged') ?? null,
  };
}
