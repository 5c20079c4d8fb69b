// Neural-network operations: softmax, norms, L2 normalisation, embedding lookup, fused
// cross-entropy and dropout, each backed by one engine kernel forward and one backward.
import { Tensor } from '../tensor/tensor.js';
import { formatShape } from '../tensor/shape.js';
import { record } from '../autograd/tape.js';
import { assertDType, assertFloat, assertSameDType, assertSameDevice, emptyLike } from './util.js';
import { contiguousRaw } from './raw.js';
import { zeros } from './creation.js';
import { contiguousStrides, normalizeAxis } from '../tensor/shape.js';
import { hostInts } from '../tensor/host-ints.js';

import { asContiguous, freeIfCopy, normShape, recordNorm, statsDType } from './norm-record.js';

function lastAxisOnly(op: string, x: Tensor, axis: number): void {
  if (normalizeAxis(axis, x.rank, op) !== x.rank - 1)
    throw new RangeError(`${op}: only the last axis is supported (got axis ${axis} of ${formatShape(x.shape)})`);
}

function softmaxImpl(x: Tensor, axis: number, log: boolean): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  x.assertAlive(op, 'x');
  assertFloat(op, 'x', x);
  lastAxisOnly(op, x, axis);
  const cols = x.shape[x.rank - 1] ?? 1;
  const rows = cols === 0 ? 0 : x.size / cols;
  const xc = asContiguous(x);
  const out = emptyLike(x);
  if (out.size > 0) x.engine.softmax(xc.dense(op), out.dense(), rows, cols, log);
  freeIfCopy(xc, x);
  return record(out, op, [x], (g) => {
    const gc = asContiguous(g);
    const gx = emptyLike(x);
    if (gx.size > 0) x.engine.softmaxGrad(out.dense(op), gc.dense(), gx.dense(), rows, cols, log);
    freeIfCopy(gc, g);
    return [gx];
  });
}

export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxImpl(x, axis, false);
}
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return softmaxImpl(x, axis, true);
}

function normImpl(rms: boolean, x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  const op = rms ? 'rmsNorm' : 'layerNorm';
  const named: Record<string, Tensor> = { x };
  if (weight) named.weight = weight;
  if (bias) named.bias = bias;
  assertSameDevice(op, named);
  assertSameDType(op, named);
  assertFloat(op, 'x', x);
  const [rows, cols] = normShape(op, x, weight, bias);
  const xc = asContiguous(x);
  const out = emptyLike(x);
  const stats = emptyLike(x, [rows, 2], statsDType(x));
  if (out.size > 0)
    x.engine.norm(
      rms,
      xc.dense(op),
      weight?.dense(op) ?? null,
      bias?.dense(op) ?? null,
      out.dense(),
      stats.dense(),
      rows,
      cols,
      eps,
    );
  return recordNorm(op, rms, out, x, xc, weight, bias, stats, rows, cols);
}

/** Layer norm over the last axis (weight and bias optional). */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  return normImpl(false, x, weight, bias, eps);
}

/** RMS norm over the last axis: x / sqrt(mean(x²) + eps) · weight. */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  return normImpl(true, x, weight, null, eps);
}

/** x / ‖x‖₂ over the last axis (as F.normalize, with ‖x‖ clamped below by eps). */
export function l2Normalize(x: Tensor, eps = 1e-12): Tensor {
  // RMS norm with eps' = eps²/n computes x / sqrt(mean(x²) + eps²/n) = √n · x / sqrt(‖x‖² + eps²).
  const n = x.shape[x.rank - 1]!;
  const r = normImpl(true, x, null, null, (eps * eps) / n);
  const out = emptyLike(r);
  if (out.size > 0) r.engine.unary('scale', r.dense(), out.dense(), out.size, 1 / Math.sqrt(n));
  return record(out, 'l2Normalize', [r], (g) => {
    const gx = emptyLike(g);
    const gc = asContiguous(g);
    if (gx.size > 0) g.engine.unary('scale', gc.dense(), gx.dense(), gx.size, 1 / Math.sqrt(n));
    freeIfCopy(gc, g);
    return [gx];
  });
}

/** The first position of `ids` outside [0, vocab), or −1. */
function firstBadId(ids: Int32Array, vocab: number): number {
  for (let i = 0; i < ids.length; i++) if (ids[i]! < 0 || ids[i]! >= vocab) return i;
  return -1;
}

/**
 * Rows of `table` [vocab, dim] for int32 `ids` of any shape → [...ids.shape, dim]. Ids uploaded from
 * a host array are checked on the host, so the engine need not report bad ids (on CUDA that report
 * waits for the device); others are checked by the engine's kernel.
 */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  const op = 'embedding';
  assertSameDevice(op, { table, ids });
  assertDType(op, 'ids', ids, 'int32');
  if (table.rank !== 2) throw new RangeError(`embedding: table must be [vocab, dim], got ${formatShape(table.shape)}`);
  const [vocab, dim] = table.shape as [number, number];
  const outOfRange = (position: number, value: number): RangeError =>
    new RangeError(
      `embedding: token id ${value} at position ${position} of ids ${formatShape(ids.shape)} is out of range ` +
        `[0, ${vocab})`,
    );
  const host = hostInts(ids);
  if (host) {
    const bad = firstBadId(host, vocab);
    if (bad >= 0) throw outOfRange(bad, host[bad]!);
  }
  const idc = asContiguous(ids);
  const tc = asContiguous(table);
  const out = emptyLike(table, [...ids.shape, dim]);
  if (ids.size > 0) {
    const engine = table.engine;
    if (host) engine.embeddingUnchecked(tc.dense(op), idc.dense(op), out.dense(), ids.size, dim, vocab);
    else {
      const bad = engine.embedding(tc.dense(op), idc.dense(op), out.dense(), ids.size, dim, vocab);
      if (bad >= 0) {
        const value = idc.toArray()[bad]!;
        out.dispose();
        freeIfCopy(idc, ids);
        freeIfCopy(tc, table);
        throw outOfRange(bad, value);
      }
    }
  }
  freeIfCopy(tc, table);
  return record(out, op, [table], (g) => {
    const gc = asContiguous(g);
    const gt = zeros(table.shape, table.dtype, table.device);
    if (ids.size > 0) table.engine.embeddingGrad(idc.dense(op), gc.dense(), gt.dense(), ids.size, dim);
    freeIfCopy(gc, g);
    return [gt];
  });
}

export interface CrossEntropyOptions {
  /** Target value whose rows are skipped (contribute no loss and no gradient). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored rows (default), 'sum', or 'none' (per-row losses). */
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Numerically stable cross-entropy from logits [..., vocab] and int32 targets [...], computed by a
 * fused kernel (log-sum-exp per row; the softmax is never stored, and the logits are read in their
 * own dtype: no float32 copy). Out-of-range targets throw. Targets uploaded from a host array are
 * checked and counted from their host copy; others are read back from the device.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, o: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy';
  assertSameDevice(op, { logits, targets });
  assertFloat(op, 'logits', logits);
  assertDType(op, 'targets', targets, 'int32');
  const vocab = logits.shape[logits.rank - 1]!;
  const rowShape = logits.shape.slice(0, -1);
  if (rowShape.length !== targets.rank || rowShape.some((d, i) => d !== targets.shape[i])) {
    throw new RangeError(
      `crossEntropy: targets ${formatShape(targets.shape)} do not match ` +
        `logits ${formatShape(logits.shape)} (expected ${formatShape(rowShape)})`,
    );
  }
  const ignoreIndex = o.ignoreIndex ?? -100;
  const reduction = o.reduction ?? 'mean';
  const rows = targets.size;
  const tc = asContiguous(targets);
  const host = hostInts(targets) ?? (tc.toArray() as Int32Array);
  let counted = 0;
  for (let i = 0; i < rows; i++) {
    const t = host[i]!;
    if (t === ignoreIndex) continue;
    if (t < 0 || t >= vocab) {
      freeIfCopy(tc, targets);
      throw new RangeError(
        `crossEntropy: target ${t} at position ${i} is out of range [0, ${vocab}) (ignoreIndex is ${ignoreIndex})`,
      );
    }
    counted++;
  }
  const lc = asContiguous(logits);
  const sdt = statsDType(logits);
  const losses = emptyLike(logits, rowShape, sdt);
  const lse = emptyLike(logits, [rows], sdt);
  if (rows > 0)
    logits.engine.crossEntropy(lc.dense(op), tc.dense(op), losses.dense(), lse.dense(), rows, vocab, ignoreIndex);
  let out: Tensor;
  let scale = 1;
  if (reduction === 'none') out = losses;
  else {
    scale = reduction === 'mean' ? 1 / Math.max(counted, 1) : 1;
    const total = emptyLike(losses, []);
    if (rows > 0) logits.engine.reduce('sum', losses.dense(), total.dense(), 1, rows, 1);
    else logits.engine.fill(total.dense(), 1, 0);
    out = emptyLike(total);
    logits.engine.unary('scale', total.dense(), out.dense(), 1, scale);
    total.dispose();
    losses.dispose();
  }
  return record(out, op, [logits], (g) => {
    // Per-row upstream gradient in the statistics dtype.
    const perRow = emptyLike(logits, [rows], sdt);
    const gs = g.dtype === sdt ? asContiguous(g) : contiguousRaw(g, sdt);
    if (reduction === 'none')
      logits.engine.copy(gs.strided(), { ...perRow.dense(), strides: contiguousStrides(rowShape) }, rowShape);
    else {
      const scaled = emptyLike(gs, []);
      logits.engine.unary('scale', gs.dense(), scaled.dense(), 1, scale);
      logits.engine.copy({ ...scaled.strided(), strides: [0] }, perRow.strided(), [rows]);
      scaled.dispose();
    }
    if (gs !== g) gs.dispose();
    const gl = emptyLike(logits);
    if (rows > 0)
      logits.engine.crossEntropyGrad(
        lc.dense(op),
        tc.dense(op),
        lse.dense(),
        perRow.dense(),
        gl.dense(),
        rows,
        vocab,
        ignoreIndex,
      );
    perRow.dispose();
    return [gl];
  });
}

/**
 * Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1−p). The
 * mask comes from a counter-based generator keyed by `seed`, so backward regenerates it exactly.
 */
export function dropout(x: Tensor, p: number, seed: number, training = true): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: probability ${p} must be in [0, 1)`);
  assertFloat('dropout', 'x', x);
  if (!training || p === 0)
    return record(x.view(x.shape, x.strides, x.offset), 'dropout', [x], (g) => [g.view(g.shape, g.strides, g.offset)]);
  const xc = asContiguous(x);
  const out = emptyLike(x);
  if (out.size > 0) x.engine.dropout(xc.dense('dropout'), out.dense(), out.size, p, seed);
  freeIfCopy(xc, x);
  return record(out, 'dropout', [x], (g) => {
    const gc = asContiguous(g);
    const gx = emptyLike(x);
    if (gx.size > 0) x.engine.dropout(gc.dense(), gx.dense(), gx.size, p, seed);
    freeIfCopy(gc, g);
    return [gx];
  });
}
