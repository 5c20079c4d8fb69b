// The paged KV cache's ops over tensors (inference; /work/notes/inference-contract.md): attention of a ragged batch
// through block tables, the scatter of new keys and values into their pool rows, and token shift through the
// per-block tails. Every argument is checked here (shapes, dtypes, devices, sizes) before an engine runs; the
// values inside the int32 metadata tensors are never read on the host (a decode step stays free of device reads),
// and the kernels skip what those values name outside the pools (Engine.pagedAttention and friends).
//
// They run without autograd: a call whose float inputs require gradients while gradients are enabled is refused.
import { Tensor } from '../tensor/tensor.js';
import { formatShape } from '../tensor/shape.js';
import { HEAD_NORM_MAX_DIM, type Dense, type PagedBatchArgs } from '../engine/engine.js';
import { isGradEnabled } from '../autograd/grad-mode.js';
import type { AttentionRotary } from './attention.js';
import { assertFloat, assertSameDType, assertSameDevice, emptyLike } from './util.js';
import { contiguousRaw } from './raw.js';
import { addNormCall, type AddNormOptions } from './fused/add-norm.js';

const INT32_MAX = 2 ** 31 - 1;

/** One step's ragged batch over a paged cache (PagedBatchArgs with its buffers as tensors). */
export interface PagedBatch {
  /** int32 [numSeqs + 1]: sequence s owns query rows queryStart[s] .. queryStart[s + 1] − 1. */
  readonly queryStart: Tensor;
  /** int32 [numSeqs]: keys of each sequence, this step's included. */
  readonly contextLens: Tensor;
  /** int32 [numSeqs, maxBlocksPerSeq]: pool block of each sequence's block i. */
  readonly blockTables: Tensor;
  /** Positions per block: a power of two ≤ 256. */
  readonly blockSize: number;
  /** Bound on any sequence's query rows this step. */
  readonly maxQueryLen: number;
  /** Bound on any contextLens value. */
  readonly maxContextLen: number;
}

export interface PagedAttentionOptions {
  /** Multiplies q·k before ALiBi. */
  readonly scale: number;
  /** [heads, headDim] per-head key scale (any float dtype; the kernels read it as float32). */
  readonly keyScale?: Tensor | null;
  readonly rotary?: AttentionRotary | null;
  /** One slope per query head, 0 for heads without ALiBi. */
  readonly alibiSlopes?: ArrayLike<number> | null;
  /** Sliding window W: the query at position p sees keys p − W < j ≤ p (as `attention`'s window). */
  readonly window?: number | null;
  /** Scores become cap · tanh(score / cap) before ALiBi and the masks (as `attention`'s softCap). */
  readonly softCap?: number | null;
  /**
   * The caller's promise that every row of q belongs to a sequence with usable metadata (an engine step's layout,
   * padding included): the output is then not zeroed first (a kernel launch less a layer), and a row no usable
   * sequence owns holds unspecified values instead of zeros — still never read or written outside the buffers.
   */
  readonly everyRowOwned?: boolean;
}

function refuseGrad(op: string, tensors: Record<string, Tensor>): void {
  if (!isGradEnabled()) return;
  for (const [name, t] of Object.entries(tensors)) {
    if (t.requiresGrad)
      throw new Error(`${op}: '${name}' requires grad, but ${op} runs without autograd (call it under noGrad)`);
  }
}

function checkCount(op: string, name: string, value: number, min = 0): void {
  if (!Number.isInteger(value) || value < min || value > INT32_MAX)
    throw new RangeError(`${op}: ${name} must be an integer in [${min}, 2^31 − 1], got ${value}`);
}

function contiguousDense(op: string, t: Tensor): { dense: Dense; temp: Tensor | null } {
  if (t.isContiguous()) return { dense: t.dense(op), temp: null };
  const c = contiguousRaw(t);
  return { dense: c.dense(op), temp: c };
}

/**
 * The engine form of a batch, after checking its tensors against `device` and `numBlocks` (the pool's blocks).
 * The metadata tensors must be contiguous: they are read in place.
 */
function batchArgs(op: string, b: PagedBatch, device: string, numBlocks: number): PagedBatchArgs {
  const { queryStart, contextLens, blockTables } = b;
  for (const [name, t] of Object.entries({ queryStart, contextLens, blockTables })) {
    if (!(t instanceof Tensor)) throw new TypeError(`${op}: batch.${name} must be a Tensor`);
    t.assertAlive(op, `batch.${name}`);
    if (t.device !== device) throw new Error(`${op}: batch.${name} is on ${t.device}, the pools on ${device}`);
    if (t.dtype !== 'int32') throw new TypeError(`${op}: batch.${name} must be int32, got ${t.dtype}`);
    if (!t.isContiguous()) throw new Error(`${op}: batch.${name} must be contiguous`);
  }
  if (queryStart.rank !== 1 || queryStart.shape[0]! < 1)
    throw new RangeError(`${op}: batch.queryStart must be [numSeqs + 1], got ${formatShape(queryStart.shape)}`);
  const numSeqs = queryStart.shape[0]! - 1;
  if (contextLens.rank !== 1 || contextLens.shape[0] !== numSeqs)
    throw new RangeError(
      `${op}: batch.contextLens must be [${numSeqs}] (one per sequence of queryStart), got ` +
        formatShape(contextLens.shape),
    );
  if (blockTables.rank !== 2 || blockTables.shape[0] !== numSeqs)
    throw new RangeError(
      `${op}: batch.blockTables must be [${numSeqs}, maxBlocksPerSeq], got ${formatShape(blockTables.shape)}`,
    );
  const { blockSize, maxQueryLen, maxContextLen } = b;
  if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > 256 || (blockSize & (blockSize - 1)) !== 0)
    throw new RangeError(`${op}: batch.blockSize must be a power of two ≤ 256, got ${blockSize}`);
  checkCount(op, 'batch.maxQueryLen', maxQueryLen);
  checkCount(op, 'batch.maxContextLen', maxContextLen);
  return {
    numSeqs,
    blockSize,
    numBlocks,
    maxBlocksPerSeq: blockTables.shape[1]!,
    maxQueryLen,
    maxContextLen,
    queryStart: queryStart.dense(op),
    contextLens: contextLens.dense(op),
    blockTables: blockTables.dense(op),
  };
}

/**
 * Attention of every query row of a ragged batch over its sequence's keys in the paged pools: q [T, heads,
 * headDim], keyPool / valuePool [numBlocks, blockSize, kvHeads, headDim] (keys as projected) → [T, heads, headDim].
 * Query row queryStart[s] + i of sequence s has position contextLens[s] − qLen + i and sees keys 0 .. its
 * position (and, with a window W, none before position − W + 1): the result is `attention` (src/ops/attention.ts)
 * of each sequence with causal masking, queryOffset L − qLen, default positions and the same window and soft-cap.
 * Float32, float64 or bfloat16. Rows of a sequence whose metadata is unusable
 * (Engine.pagedAttention) come back as zeros, as do rows that see no key.
 */
export function pagedAttention(
  q: Tensor,
  keyPool: Tensor,
  valuePool: Tensor,
  batch: PagedBatch,
  options: PagedAttentionOptions,
): Tensor {
  const op = 'pagedAttention';
  const named: Record<string, Tensor> = { q, keyPool, valuePool };
  const keyScale = options.keyScale ?? null;
  if (keyScale) named.keyScale = keyScale;
  assertSameDevice(op, named);
  assertSameDType(op, { q, keyPool, valuePool });
  assertFloat(op, 'q', q);
  if (q.dtype === 'float16') throw new TypeError(`${op}: float16 is not supported (float32, float64 or bfloat16)`);
  refuseGrad(op, named);
  if (q.rank !== 3) throw new RangeError(`${op}: q must be [T, heads, headDim], got ${formatShape(q.shape)}`);
  const [totalQueries, heads, headDim] = q.shape as [number, number, number];
  if (keyPool.rank !== 4 || keyPool.shape[3] !== headDim)
    throw new RangeError(
      `${op}: keyPool must be [numBlocks, blockSize, kvHeads, ${headDim}], got ${formatShape(keyPool.shape)}`,
    );
  const [numBlocks, blockSize, kvHeads] = keyPool.shape as [number, number, number];
  if (valuePool.shape.length !== 4 || valuePool.shape.some((d, i) => d !== keyPool.shape[i]))
    throw new RangeError(
      `${op}: valuePool ${formatShape(valuePool.shape)} must match keyPool ${formatShape(keyPool.shape)}`,
    );
  if (!keyPool.isContiguous() || !valuePool.isContiguous())
    throw new Error(`${op}: keyPool and valuePool must be contiguous (the kernels address their rows)`);
  if (batch.blockSize !== blockSize)
    throw new RangeError(`${op}: batch.blockSize ${batch.blockSize} differs from the pools' block size ${blockSize}`);
  if (kvHeads < 1 || heads % kvHeads !== 0)
    throw new RangeError(`${op}: ${heads} query heads are not a multiple of ${kvHeads} key/value heads`);
  if (!Number.isFinite(options.scale)) throw new RangeError(`${op}: scale ${options.scale} must be a finite number`);
  if (keyScale && (keyScale.rank !== 2 || keyScale.shape[0] !== heads || keyScale.shape[1] !== headDim))
    throw new RangeError(`${op}: keyScale must be [${heads}, ${headDim}], got ${formatShape(keyScale.shape)}`);
  if (keyScale) assertFloat(op, 'keyScale', keyScale);
  let rotaryDim = 0,
    rotaryInvFreq: Float32Array | null = null,
    xposScaleBase = 0;
  if (options.rotary && options.rotary.dim > 0) {
    rotaryDim = options.rotary.dim;
    if (!Number.isInteger(rotaryDim) || rotaryDim % 2 !== 0 || rotaryDim > headDim)
      throw new RangeError(`${op}: rotary dim ${rotaryDim} must be even and at most the head dim ${headDim}`);
    if (options.rotary.invFreq.length !== rotaryDim / 2)
      throw new RangeError(
        `${op}: rotary needs ${rotaryDim / 2} inverse frequencies, got ${options.rotary.invFreq.length}`,
      );
    rotaryInvFreq = Float32Array.from(options.rotary.invFreq);
    xposScaleBase = options.rotary.xposScaleBase ?? 0;
    if (xposScaleBase < 0 || !Number.isFinite(xposScaleBase))
      throw new RangeError(`${op}: xPos scale base ${xposScaleBase} must be positive (or 0 for none)`);
  }
  let alibiSlopes: Float32Array | null = null;
  if (options.alibiSlopes) {
    if (options.alibiSlopes.length !== heads)
      throw new RangeError(
        `${op}: ${options.alibiSlopes.length} ALiBi slopes for ${heads} heads (give 0 for heads without ALiBi)`,
      );
    alibiSlopes = Float32Array.from(options.alibiSlopes);
    if (alibiSlopes.every((s) => s === 0)) alibiSlopes = null;
  }
  const window = options.window ?? 0;
  if (!Number.isInteger(window) || window < 0 || window > INT32_MAX)
    throw new RangeError(`${op}: sliding window ${window} must be a non-negative integer (0 or null: none)`);
  const softCap = options.softCap ?? 0;
  if (!(Number.isFinite(softCap) && softCap >= 0))
    throw new RangeError(`${op}: logit soft-cap ${softCap} must be a non-negative number (0 or null: none)`);
  const args = batchArgs(op, batch, q.device, numBlocks);
  const qIn = contiguousDense(op, q);
  // The kernels read a float32 key scale or one in q's dtype (a bf16 model's parameter, with no cast each step).
  const scaleIn =
    keyScale && (keyScale.dtype === 'float32' || keyScale.dtype === q.dtype) ? contiguousDense(op, keyScale) : null;
  const scaleCast = keyScale && !scaleIn ? keyScale.to('float32') : null;
  const out = emptyLike(q, q.shape, q.dtype, op);
  try {
    // Rows of sequences whose metadata the kernel cannot use stay as they are: zeros, unless none can exist.
    if (out.size > 0 && !options.everyRowOwned) q.engine.fill(out.dense(op), out.size, 0);
    if (out.size > 0)
      q.engine.pagedAttention(qIn.dense, keyPool.dense(op), valuePool.dense(op), out.dense(op), totalQueries, {
        ...args,
        heads,
        kvHeads,
        headDim,
        scale: options.scale,
        alibiSlopes,
        rotaryDim,
        rotaryInvFreq,
        xposScaleBase,
        keyScale: scaleIn?.dense ?? scaleCast?.dense(op) ?? null,
        window,
        softCap,
      });
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    qIn.temp?.dispose();
    scaleIn?.temp?.dispose();
    scaleCast?.dispose();
  }
  return out;
}

/** The number of leading axes of `shape` whose trailing product is `width` (−1 when no suffix has it). */
function rowAxes(shape: readonly number[], width: number): number {
  let product = 1;
  for (let axis = shape.length; axis >= 0; axis--) {
    if (product === width) return axis;
    if (axis > 0) product *= shape[axis - 1]!;
  }
  return -1;
}

/** One tensor of writeHeadRows. */
export interface HeadRowsWrite {
  /** [count, heads, dim]: the rows to write. */
  readonly x: Tensor;
  /** Rows of heads × dim in its trailing axes (a pool [blocks, blockSize, heads, dim], or [count, heads, dim]). */
  readonly into: Tensor;
  /** int32 [count]: the row of `into` each row of x goes to (values outside its rows skip the row); null: row r. */
  readonly at: Tensor | null;
  /** Head-norm the rows as headNorm does (same bits), scaled by `weight` [heads, dim] when given; null: copy. */
  readonly norm: { readonly weight: Tensor | null } | null;
}

/**
 * A paged step's attention inputs in one launch: each write puts x's rows into `into`, head-normed or copied —
 * a decode step's query norm, key norm with the scatter into the key pool and the value scatter, together
 * (Engine.headNormRows). In place, without autograd; head dims up to HEAD_NORM_MAX_DIM (beyond, the caller
 * composes headNorm and scatterRows).
 */
export function writeHeadRows(writes: readonly HeadRowsWrite[], eps = 1e-12): void {
  const op = 'writeHeadRows';
  if (writes.length === 0) return;
  const tensors: Record<string, Tensor> = {};
  writes.forEach((w, i) => {
    tensors[`writes[${i}].x`] = w.x;
    tensors[`writes[${i}].into`] = w.into;
    if (w.at) tensors[`writes[${i}].at`] = w.at;
    if (w.norm?.weight) tensors[`writes[${i}].norm.weight`] = w.norm.weight;
  });
  assertSameDevice(op, tensors);
  refuseGrad(op, tensors);
  if (!Number.isFinite(eps) || eps < 0) throw new RangeError(`${op}: eps must be finite and ≥ 0, got ${eps}`);
  const dtype = writes[0]!.x.dtype;
  const items = writes.map((w, i) => {
    const what = `${op}: writes[${i}]`;
    for (const [name, t] of [
      ['x', w.x],
      ['into', w.into],
      ['norm.weight', w.norm?.weight ?? null],
    ] as const)
      if (t && t.dtype !== dtype) throw new TypeError(`${what}.${name} is ${t.dtype}; every tensor must be ${dtype}`);
    assertFloat(op, `writes[${i}].x`, w.x);
    if (w.x.rank !== 3) throw new RangeError(`${what}.x must be [count, heads, dim], got ${formatShape(w.x.shape)}`);
    const [count, heads, dim] = w.x.shape as [number, number, number];
    if (dim > HEAD_NORM_MAX_DIM) throw new RangeError(`${what}: head dim ${dim} is above ${HEAD_NORM_MAX_DIM}`);
    const axes = rowAxes(w.into.shape, heads * dim);
    if (axes < 0 || heads * dim === 0)
      throw new RangeError(`${what}: into ${formatShape(w.into.shape)} does not end in rows of [${heads}, ${dim}]`);
    if (!w.into.isContiguous()) throw new Error(`${what}.into must be contiguous (it is written in place)`);
    const rows = w.into.shape.slice(0, axes).reduce((a, b) => a * b, 1);
    if (w.at) {
      if (w.at.dtype !== 'int32' || w.at.rank !== 1 || w.at.size !== count)
        throw new RangeError(`${what}.at must be int32 [${count}], got ${w.at.dtype} ${formatShape(w.at.shape)}`);
      if (!w.at.isContiguous()) throw new Error(`${what}.at must be contiguous`);
    } else if (rows < count) {
      throw new RangeError(`${what}: into has ${rows} rows for the ${count} rows of x`);
    }
    const weight = w.norm?.weight ?? null;
    if (weight && (weight.rank !== 2 || weight.shape[0] !== heads || weight.shape[1] !== dim))
      throw new RangeError(`${what}.norm.weight ${formatShape(weight.shape)} must be [${heads}, ${dim}]`);
    if (weight && !weight.isContiguous()) throw new Error(`${what}.norm.weight must be contiguous`);
    return { w, count, heads, dim, rows };
  });
  const temps: Tensor[] = [];
  try {
    const engineItems = items.map(({ w, count, heads, dim, rows }) => {
      const x = contiguousDense(op, w.x);
      if (x.temp) temps.push(x.temp);
      return {
        x: x.dense,
        y: w.into.dense(op),
        weight: w.norm?.weight?.dense(op) ?? null,
        index: w.at?.dense(op) ?? null,
        count,
        heads,
        dim,
        rows,
        normalize: w.norm !== null,
      };
    });
    writes[0]!.x.engine.headNormRows(engineItems, eps);
  } finally {
    for (const t of temps) t.dispose();
  }
}

/**
 * dst row index[i] = src row i, in place: src [count, ...row], index int32 [count], dst [...rows, ...row] (its
 * trailing axes hold one row). Index values outside [0, rows of dst) are skipped; with repeated indices the row
 * receives one of its sources.
 */
export function scatterRows(src: Tensor, index: Tensor, dst: Tensor): void {
  const op = 'scatterRows';
  assertSameDevice(op, { src, index, dst });
  assertSameDType(op, { src, dst });
  refuseGrad(op, { src, dst });
  if (index.dtype !== 'int32') throw new TypeError(`${op}: index must be int32, got ${index.dtype}`);
  if (src.rank < 1) throw new RangeError(`${op}: src must be [count, ...row], got a scalar`);
  const count = src.shape[0]!;
  if (index.size !== count)
    throw new RangeError(
      `${op}: index has ${index.size} values for the ${count} rows of src ${formatShape(src.shape)}`,
    );
  const width = count > 0 ? src.size / count : src.shape.slice(1).reduce((a, b) => a * b, 1);
  const axes = rowAxes(dst.shape, width);
  if (axes < 0)
    throw new RangeError(
      `${op}: rows of ${width} elements (src ${formatShape(src.shape)}) do not match dst ${formatShape(dst.shape)}`,
    );
  if (!dst.isContiguous()) throw new Error(`${op}: dst must be contiguous (it is written in place)`);
  const rows = dst.shape.slice(0, axes).reduce((a, b) => a * b, 1);
  if (count === 0 || width === 0) return;
  const srcIn = contiguousDense(op, src);
  const indexIn = contiguousDense(op, index);
  try {
    dst.engine.scatterRows(srcIn.dense, indexIn.dense, dst.dense(op), count, width, rows);
  } finally {
    srcIn.temp?.dispose();
    indexIn.temp?.dispose();
  }
}

/** Checks x [T, dim] and tails [numBlocks, ring, dim]; returns [T, dim, ring, numBlocks]. */
function checkRows(op: string, x: Tensor, tails: Tensor): [number, number, number, number] {
  assertSameDevice(op, { x, tails });
  assertSameDType(op, { x, tails });
  refuseGrad(op, { x, tails });
  if (x.rank !== 2) throw new RangeError(`${op}: x must be [T, dim], got ${formatShape(x.shape)}`);
  const [totalQueries, dim] = x.shape as [number, number];
  if (tails.rank !== 3 || tails.shape[2] !== dim)
    throw new RangeError(`${op}: tails must be [numBlocks, ring, ${dim}], got ${formatShape(tails.shape)}`);
  if (!tails.isContiguous()) throw new Error(`${op}: tails must be contiguous (the kernels address their rows)`);
  const [numBlocks, ring] = tails.shape as [number, number];
  return [totalQueries, dim, ring, numBlocks];
}

/**
 * Token shift of a step's rows (x [T, dim]) with earlier positions from the tail pool (tails [numBlocks, ring, dim],
 * ring ≥ shifts): feature chunk k (k = 0..shifts, width floor(dim / (shifts + 1)), the rest unshifted, as
 * `shiftTokens`) of the row at position p comes from position p − k — this step's row when it has one, else the
 * tail of the block holding p − k, zeros before the start. Returns a new [T, dim] tensor.
 */
export function pagedTokenShift(x: Tensor, tails: Tensor, batch: PagedBatch, shifts: number): Tensor {
  return shiftThroughTails('pagedTokenShift', x, tails, batch, shifts);
}

/**
 * pagedTokenShift(x, tails, batch, shifts) and then pagedTailWrite(x, tails, batch): returns the shifted rows and
 * leaves x stored as the tails of its positions — in one kernel on CUDA for decode steps (one row per sequence).
 */
export function pagedTokenShiftAndTailWrite(x: Tensor, tails: Tensor, batch: PagedBatch, shifts: number): Tensor {
  return shiftThroughTails('pagedTokenShiftAndTailWrite', x, tails, batch, shifts);
}

/** The checks and the call of the two token shift ops (the second also writes the tails: ring ≥ 1). */
function shiftThroughTails(
  op: 'pagedTokenShift' | 'pagedTokenShiftAndTailWrite',
  x: Tensor,
  tails: Tensor,
  batch: PagedBatch,
  shifts: number,
): Tensor {
  const [totalQueries, dim, ring, numBlocks] = checkRows(op, x, tails);
  checkCount(op, 'shifts', shifts);
  if (ring < shifts) throw new RangeError(`${op}: the tails keep ${ring} rows per block, fewer than shifts ${shifts}`);
  if (op === 'pagedTokenShiftAndTailWrite' && ring < 1)
    throw new RangeError(`${op}: the tails must keep at least one row per block, got ring ${ring}`);
  const args = batchArgs(op, batch, x.device, numBlocks);
  const xIn = contiguousDense(op, x);
  const out = emptyLike(x, x.shape, x.dtype, op);
  try {
    if (out.size > 0) x.engine[op](xIn.dense, tails.dense(op), out.dense(op), totalQueries, dim, shifts, ring, args);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    xIn.temp?.dispose();
  }
  return out;
}

/**
 * addNorm of a decode step's rows (branch and residual [T, dim]; addThenNorm's sum too with `keepSum`) whose output
 * is the next sub-layer's input: { out, sum, shifted } with shifted = pagedTokenShiftAndTailWrite(out, tails, batch,
 * shifts) — the values and tails of the calls in order, in one pass on CUDA (Engine.addNormShift). Steps of at most
 * one row per sequence (batch.maxQueryLen ≤ 1: every earlier position is in the tails). No autograd.
 */
export function addNormShift(
  branch: Tensor,
  residual: Tensor,
  norm: AddNormOptions,
  keepSum: boolean,
  tails: Tensor,
  batch: PagedBatch,
  shifts: number,
): { out: Tensor; sum: Tensor | null; shifted: Tensor } {
  const op = 'addNormShift';
  const [totalQueries, , ring, numBlocks] = checkRows(op, branch, tails);
  refuseGrad(op, {
    residual,
    ...(norm.weight ? { weight: norm.weight } : {}),
    ...(norm.bias ? { bias: norm.bias } : {}),
  });
  checkCount(op, 'shifts', shifts);
  if (ring < Math.max(shifts, 1))
    throw new RangeError(`${op}: the tails keep ${ring} rows per block; they need at least max(shifts ${shifts}, 1)`);
  if (batch.maxQueryLen > 1)
    throw new RangeError(
      `${op}: takes steps of at most one row per sequence, got batch.maxQueryLen ${batch.maxQueryLen}`,
    );
  const args = batchArgs(op, batch, branch.device, numBlocks);
  const call = addNormCall(op, branch, residual, norm);
  const out = emptyLike(branch, branch.shape, branch.dtype, op);
  const sum = keepSum ? emptyLike(branch, branch.shape, branch.dtype, op) : null;
  const shifted = emptyLike(branch, branch.shape, branch.dtype, op);
  const stats = emptyLike(branch, [totalQueries, 2], call.statsDType, op);
  try {
    if (out.size > 0) {
      const dense = (t: Tensor) => t.dense(op);
      branch.engine.addNormShift(
        call.args,
        dense(out),
        sum ? dense(sum) : null,
        dense(stats),
        tails.dense(op),
        dense(shifted),
        shifts,
        ring,
        args,
      );
    }
  } catch (e) {
    for (const t of [out, sum, shifted]) t?.dispose();
    throw e;
  } finally {
    stats.dispose();
    call.release();
  }
  return { out, sum, shifted };
}

/**
 * Stores a step's rows (x [T, dim]) in the tail pool, in place: the row at position p of a sequence goes to
 * tails[blockTables[s][p / blockSize], p % ring] (the latest position wins where several rows share a slot).
 */
export function pagedTailWrite(x: Tensor, tails: Tensor, batch: PagedBatch): void {
  const op = 'pagedTailWrite';
  const [totalQueries, dim, ring, numBlocks] = checkRows(op, x, tails);
  if (ring < 1) throw new RangeError(`${op}: the tails must keep at least one row per block, got ring ${ring}`);
  const args = batchArgs(op, batch, x.device, numBlocks);
  if (x.size === 0 || tails.size === 0) return;
  const xIn = contiguousDense(op, x);
  try {
    x.engine.pagedTailWrite(xIn.dense, tails.dense(op), totalQueries, dim, ring, args);
  } finally {
    xIn.temp?.dispose();
  }
}
