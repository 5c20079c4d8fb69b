// Matrix products: batched matmul with broadcasting (transposed views are read without copies)
// and `linear`, the fused x·Wᵀ + b of every projection in the model.
import { Tensor } from '../tensor/tensor.js';
import { broadcastShapes, formatShape } from '../tensor/shape.js';
import { record } from '../autograd/tape.js';
import { isGradEnabled } from '../autograd/grad-mode.js';
import { assertFloat, assertSameDType, assertSameDevice, emptyLike, release } from './util.js';
import { contiguous, reshape, sumTo, transpose } from './layout.js';
import { contiguousRaw } from './raw.js';
import { reduceRaw } from './reduce.js';

interface Operand {
  tensor: Tensor;
  /** True when the stored matrix is the transpose of the logical one. */
  trans: boolean;
  ld: number;
  batchStride: number;
  /** A copy made to get a usable layout, freed after the call. */
  temp: boolean;
}

/** `t` viewed with its batch axes broadcast to `batchShape` (no copy). */
function broadcastBatch(t: Tensor, batchShape: readonly number[]): Tensor {
  const batchDims = t.shape.slice(0, -2);
  const lead = batchShape.length - batchDims.length;
  const strides = batchShape.map((d, i) => (i < lead || batchDims[i - lead] !== d ? 0 : t.strides[i - lead]!));
  return t.view([...batchShape, ...t.shape.slice(-2)], [...strides, ...t.strides.slice(-2)], t.offset);
}

/** Describes how the engine reads `t` ([...batch, rows, cols]) for a GEMM over `batchShape`. */
function operand(t: Tensor, batchShape: readonly number[]): Operand {
  const r = t.rank;
  const rows = t.shape[r - 2]!,
    cols = t.shape[r - 1]!;
  const sRow = t.strides[r - 2]!,
    sCol = t.strides[r - 1]!;
  let layout: { trans: boolean; ld: number } | null = null;
  if (sCol === 1 && (rows === 1 || sRow >= cols)) layout = { trans: false, ld: Math.max(sRow, cols) };
  else if (sRow === 1 && (cols === 1 || sCol >= rows)) layout = { trans: true, ld: Math.max(sCol, rows) };
  const batchDims = t.shape.slice(0, r - 2);
  const batchCount = batchShape.reduce((a, b) => a * b, 1);
  let batchStride: number | null = 0;
  if (batchCount > 1 && batchDims.reduce((a, b) => a * b, 1) > 1) {
    // Read through the broadcast batch strides; usable when they collapse to one stride.
    const lead = batchShape.length - batchDims.length;
    const strides = batchShape.map((d, i) => (i < lead || batchDims[i - lead] !== d ? 0 : t.strides[i - lead]!));
    let expected: number | null = null;
    for (let i = strides.length - 1; i >= 0 && batchStride !== null; i--) {
      if (batchShape[i] === 1) continue;
      if (expected === null) {
        batchStride = strides[i]!;
        expected = strides[i]! * batchShape[i]!;
      } else if (strides[i] !== expected) batchStride = null;
      else expected *= batchShape[i]!;
    }
  }
  if (layout === null || batchStride === null) {
    const e = broadcastBatch(t, batchShape);
    const c = contiguousRaw(e);
    if (e !== t) e.dispose();
    return { tensor: c, trans: false, ld: cols, batchStride: batchCount > 1 ? rows * cols : 0, temp: true };
  }
  return { tensor: t, trans: layout.trans, ld: layout.ld, batchStride, temp: false };
}

/** C = A·B on raw tensors (no autograd): a [...batch, m, k], b [...batch, k, n]. */
export function matmulRaw(a: Tensor, b: Tensor, op = 'matmul'): Tensor {
  assertSameDevice(op, { a, b });
  assertSameDType(op, { a, b });
  assertFloat(op, 'a', a);
  if (a.rank < 2 || b.rank < 2)
    throw new RangeError(`${op}: operands need rank ≥ 2, got ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
  const m = a.shape[a.rank - 2]!,
    k = a.shape[a.rank - 1]!,
    n = b.shape[b.rank - 1]!;
  if (b.shape[b.rank - 2] !== k) {
    throw new RangeError(
      `${op}: inner dimensions differ: ` +
        `a is ${formatShape(a.shape)}, b is ${formatShape(b.shape)} (${k} vs ${b.shape[b.rank - 2]})`,
    );
  }
  const batchShape = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), op);
  const batch = batchShape.reduce((x, y) => x * y, 1);
  const out = emptyLike(a, [...batchShape, m, n]);
  if (out.size === 0) return out;
  if (k === 0) {
    out.engine.fill(out.dense(), out.size, 0);
    return out;
  }
  const oa = operand(a, batchShape),
    ob = operand(b, batchShape);
  a.engine.matmul({
    a: oa.tensor.strided(op),
    b: ob.tensor.strided(op),
    c: out.dense(),
    m,
    n,
    k,
    transA: oa.trans,
    transB: ob.trans,
    lda: oa.ld,
    ldb: ob.ld,
    ldc: n,
    strideA: oa.batchStride,
    strideB: ob.batchStride,
    strideC: m * n,
    batch,
    alpha: 1,
    beta: 0,
  });
  if (oa.temp) oa.tensor.dispose();
  if (ob.temp) ob.tensor.dispose();
  return out;
}

/** Matrix product with numpy semantics (1-d operands are promoted and the axis removed after). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  a.assertAlive('matmul', 'a');
  b.assertAlive('matmul', 'b');
  if (a.rank === 0 || b.rank === 0)
    throw new RangeError(`matmul: scalars are not matrices (${formatShape(a.shape)} · ${formatShape(b.shape)})`);
  if (a.rank === 1 || b.rank === 1) {
    const a2 = a.rank === 1 ? reshape(a, [1, a.shape[0]!]) : a;
    const b2 = b.rank === 1 ? reshape(b, [b.shape[0]!, 1]) : b;
    const r = matmul(a2, b2);
    const shape = r.shape.filter((_, i) => !((a.rank === 1 && i === r.rank - 2) || (b.rank === 1 && i === r.rank - 1)));
    const out = reshape(r, shape);
    if (a2 !== a) release(a2);
    if (b2 !== b) release(b2);
    release(r);
    return out;
  }
  const out = matmulRaw(a, b);
  return record(out, 'matmul', [a, b], (g) => {
    let ga: Tensor | null = null,
      gb: Tensor | null = null;
    if (a.requiresGrad) {
      const bt = transpose(b, -2, -1);
      const full = matmulRaw(g, bt);
      ga = sumTo(full, a.shape);
      bt.dispose();
      if (ga !== full) full.dispose();
    }
    if (b.requiresGrad) {
      const at = transpose(a, -2, -1);
      const full = matmulRaw(at, g);
      gb = sumTo(full, b.shape);
      at.dispose();
      if (gb !== full) full.dispose();
    }
    return [ga, gb];
  });
}

/**
 * [linear(x, w) for w of weights] (no biases) — one input through several weights, as a decode step's query, key
 * and value projections — in one engine call (Engine.matmulSharedInput: one launch on CUDA for a few rows) when
 * nothing records gradients; otherwise each `linear` on its own, so gradients are as they always are.
 */
export function linearSharedInput(x: Tensor, weights: readonly Tensor[]): Tensor[] {
  const op = 'linearSharedInput';
  const inF = x.shape[x.rank - 1]!;
  const grads = isGradEnabled() && (x.requiresGrad || weights.some((w) => w.requiresGrad));
  if (grads || weights.length < 2 || inF === 0 || x.dtype === 'int32') return weights.map((w) => linear(x, w));
  const named: Record<string, Tensor> = { x };
  weights.forEach((w, i) => (named[`weights[${i}]`] = w));
  assertSameDevice(op, named);
  assertSameDType(op, named);
  for (const [i, w] of weights.entries())
    if (w.rank !== 2 || w.shape[1] !== inF)
      throw new RangeError(
        `${op}: input ${formatShape(x.shape)} does not match weights[${i}] ${formatShape(w.shape)} (expected last ` +
          `axis ${inF})`,
      );
  const rows = x.size / inF;
  const xc = x.isContiguous() ? x : contiguousRaw(x);
  const wcs = weights.map((w) => (w.isContiguous() ? w : contiguousRaw(w)));
  const outs = weights.map((w) => emptyLike(x, [...x.shape.slice(0, -1), w.shape[0]!]));
  try {
    if (rows > 0)
      x.engine.matmulSharedInput(
        xc.dense(op),
        rows,
        inF,
        wcs.map((w, i) => ({ b: w.dense(op), c: outs[i]!.dense(), n: w.shape[0]! })),
      );
  } catch (e) {
    for (const t of outs) t.dispose();
    throw e;
  } finally {
    if (xc !== x) xc.dispose();
    wcs.forEach((w, i) => w !== weights[i] && w.dispose());
  }
  return outs;
}

/** y = x·Wᵀ + b for x [..., in], weight [out, in], bias [out] or null. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const op = 'linear';
  assertSameDevice(op, bias ? { x, weight, bias } : { x, weight });
  assertSameDType(op, bias ? { x, weight, bias } : { x, weight });
  const inF = weight.shape[1]!,
    outF = weight.shape[0]!;
  if (weight.rank !== 2 || x.shape[x.rank - 1] !== inF) {
    throw new RangeError(
      `linear: input ${formatShape(x.shape)} does not match weight ${formatShape(weight.shape)} (expected last ` +
        `axis ${inF})`,
    );
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== outF)) {
    throw new RangeError(
      `linear: bias ${formatShape(bias.shape)} does not match weight ${formatShape(weight.shape)} (expected [${outF}])`,
    );
  }
  const rows = x.size / inF;
  const xc = x.isContiguous() ? x : contiguousRaw(x);
  const wc = weight.isContiguous() ? weight : contiguousRaw(weight);
  const out = emptyLike(x, [...x.shape.slice(0, -1), outF]);
  if (out.size > 0) {
    const product = (beta: number) => ({
      a: xc.dense(op),
      b: wc.dense(op),
      c: out.dense(),
      m: rows,
      n: outF,
      k: inF,
      transA: false,
      transB: true,
      lda: inF,
      ldb: inF,
      ldc: outF,
      strideA: 0,
      strideB: 0,
      strideC: 0,
      batch: 1,
      alpha: 1,
      beta,
    });
    if (inF === 0) {
      // An empty product: the output is the bias rows, or zeros.
      if (bias)
        x.engine.copy({ ...bias.strided(op), strides: [0, 1] }, { ...out.dense(), strides: [outF, 1] }, [rows, outF]);
      else x.engine.fill(out.dense(), out.size, 0);
    } else if (bias) {
      // The bias is added in the product's epilogue: no broadcast copy into the output first.
      const bc = bias.isContiguous() ? bias : contiguousRaw(bias);
      x.engine.matmulBias(product(0), bc.dense(op));
      if (bc !== bias) bc.dispose();
    } else {
      x.engine.matmul(product(0));
    }
  }
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(out, op, inputs, (g, into) => {
    const gc = g.isContiguous() ? g : contiguousRaw(g);
    const grads: (Tensor | null)[] = [null, null, null];
    if (x.requiresGrad) {
      // x feeding several projections (q, k, v): later ones add into the gradient in the product's epilogue.
      const gx = into[0] ?? emptyLike(x, x.shape);
      x.engine.matmul({
        a: gc.dense(),
        b: wc.dense(),
        c: gx.dense(),
        m: rows,
        n: inF,
        k: outF,
        transA: false,
        transB: false,
        lda: outF,
        ldb: inF,
        ldc: inF,
        strideA: 0,
        strideB: 0,
        strideC: 0,
        batch: 1,
        alpha: 1,
        beta: into[0] ? 1 : 0,
      });
      grads[0] = gx;
    }
    if (weight.requiresGrad) {
      const gw = emptyLike(weight);
      x.engine.matmul({
        a: gc.dense(),
        b: xc.dense(),
        c: gw.dense(),
        m: outF,
        n: inF,
        k: rows,
        transA: true,
        transB: false,
        lda: outF,
        ldb: inF,
        ldc: inF,
        strideA: 0,
        strideB: 0,
        strideC: 0,
        batch: 1,
        alpha: 1,
        beta: 0,
      });
      grads[1] = gw;
    }
    if (bias?.requiresGrad) {
      const flat = gc.view([rows, outF], [outF, 1], gc.offset);
      grads[2] = reduceRaw('sum', flat, [0], false);
      flat.dispose();
    }
    if (gc !== g) gc.dispose();
    return bias ? grads : grads.slice(0, 2);
  });
}
