// Residual add fused with layer norm or RMS norm over the last axis, the two places a residual stream
// meets a norm: post-norm (DeepNorm) blocks compute x = norm(branch + x·scale·c) (`addNorm`), pre-norm
// blocks keep sum = branch + x·scale·c as the stream and feed norm(sum) to the next sub-layer
// (`addThenNorm`). Each is one engine kernel per direction (Engine.addNorm; native/fused/add_norm/);
// `addNorm` never stores the sum (its backward recomputes it from the two inputs). `addNormComposed` and
// `addThenNormComposed` give the same values from the elementwise ops and the norm: the reference the
// tests hold the kernels to.
import type { AddNormArgs } from '../../engine/engine.js';
import { Tensor } from '../../tensor/tensor.js';
import { formatShape, shapesEqual } from '../../tensor/shape.js';
import { record } from '../../autograd/tape.js';
import { assertFloat, assertSameDType, assertSameDevice, emptyLike } from '../util.js';
import { add, mul } from '../elementwise.js';
import { layerNorm, rmsNorm } from '../nn.js';
import { binaryRaw } from '../raw.js';
import { reduceRaw } from '../reduce.js';
import { asContiguous, freeIfCopy, normShape, recordNorm, statsDType } from '../norm-record.js';

export interface AddNormOptions {
  /** RMS norm instead of layer norm. */
  rms?: boolean;
  weight?: Tensor | null;
  /** Layer norm only. */
  bias?: Tensor | null;
  /** Default 1e-5 (layer norm) or 1e-6 (RMS norm), as layerNorm and rmsNorm. */
  eps?: number;
  /** The constant c multiplying the residual (DeepNorm's (2·depth)^¼); default 1. */
  residualConstant?: number;
  /** A learned per-feature residual scale [last axis], or none. */
  residualScale?: Tensor | null;
}

interface Prepared {
  op: string;
  rms: boolean;
  weight: Tensor | null;
  bias: Tensor | null;
  scale: Tensor | null;
  c: number;
  eps: number;
  rows: number;
  cols: number;
}

function prepare(op: string, a: Tensor, b: Tensor, o: AddNormOptions): Prepared {
  const rms = o.rms ?? false;
  const weight = o.weight ?? null,
    bias = o.bias ?? null,
    scale = o.residualScale ?? null;
  const named: Record<string, Tensor> = { a, b };
  if (weight) named.weight = weight;
  if (bias) named.bias = bias;
  if (scale) named.residualScale = scale;
  assertSameDevice(op, named);
  assertSameDType(op, named);
  assertFloat(op, 'a', a);
  if (rms && bias) throw new Error(`${op}: RMS norm has no bias`);
  if (!shapesEqual(a.shape, b.shape))
    throw new RangeError(
      `${op}: the branch ${formatShape(a.shape)} and the residual ${formatShape(b.shape)} differ in shape`,
    );
  if (a.rank === 0) throw new RangeError(`${op}: needs at least one axis to normalise`);
  const [rows, cols] = normShape(op, a, weight, bias);
  if (scale && (scale.rank !== 1 || scale.shape[0] !== cols)) {
    throw new RangeError(
      `${op}: residualScale ${formatShape(scale.shape)} does not match the last axis of ${formatShape(a.shape)}`,
    );
  }
  return { op, rms, weight, bias, scale, c: o.residualConstant ?? 1, eps: o.eps ?? (rms ? 1e-6 : 1e-5), rows, cols };
}

function kernelArgs(p: Prepared, ac: Tensor, bc: Tensor): AddNormArgs {
  return {
    rms: p.rms,
    a: ac.dense(p.op),
    b: bc.dense(p.op),
    scale: p.scale?.dense(p.op) ?? null,
    c: p.c,
    weight: p.weight?.dense(p.op) ?? null,
    bias: p.bias?.dense(p.op) ?? null,
    rows: p.rows,
    cols: p.cols,
    eps: p.eps,
  };
}

/**
 * The checked engine arguments of an add + norm of a (the branch) and b (the residual), for ops that call the
 * addNorm kernel inside a larger pass (src/ops/paged.ts, addNormShift); `release` frees contiguous copies.
 */
export function addNormCall(
  op: string,
  a: Tensor,
  b: Tensor,
  o: AddNormOptions,
): { args: AddNormArgs; rows: number; statsDType: 'float32' | 'float64'; release(): void } {
  const p = prepare(op, a, b, o);
  const ac = asContiguous(a),
    bc = asContiguous(b);
  return {
    args: kernelArgs(p, ac, bc),
    rows: p.rows,
    statsDType: statsDType(a),
    release: () => {
      freeIfCopy(ac, a);
      freeIfCopy(bc, b);
    },
  };
}

/** b·scale·c with the elementwise ops. */
function scaledResidual(b: Tensor, p: Prepared): Tensor {
  let r = b;
  if (p.scale) r = mul(r, p.scale);
  if (p.c !== 1) r = mul(r, p.c);
  return r;
}

function normOf(x: Tensor, p: Prepared): Tensor {
  return p.rms ? rmsNorm(x, p.weight, p.eps) : layerNorm(x, p.weight, p.bias, p.eps);
}

/** norm(a + b·scale·c)·weight + bias over the last axis (a: the branch, b: the residual stream). */
export function addNorm(a: Tensor, b: Tensor, o: AddNormOptions = {}): Tensor {
  const p = prepare('addNorm', a, b, o);
  const engine = a.engine;
  const ac = asContiguous(a),
    bc = asContiguous(b);
  const out = emptyLike(a);
  const stats = emptyLike(a, [p.rows, 2], statsDType(a));
  if (out.size > 0) engine.addNorm(kernelArgs(p, ac, bc), out.dense(), null, stats.dense());
  const params = [p.scale, p.weight, p.bias].filter((t): t is Tensor => t !== null);
  return record(out, p.op, [a, b, ...params], (g) => {
    const gc = asContiguous(g);
    const ga = emptyLike(a);
    const gb = b.requiresGrad ? emptyLike(b) : null;
    const [gs, gw, gbias] = [p.scale, p.weight, p.bias].map((t) => (t?.requiresGrad ? emptyLike(t) : null));
    if (ga.size > 0) {
      engine.addNormGrad(kernelArgs(p, ac, bc), stats.dense(), gc.dense(), {
        a: ga.dense(),
        b: gb?.dense() ?? null,
        scale: gs?.dense() ?? null,
        weight: gw?.dense() ?? null,
        bias: gbias?.dense() ?? null,
      });
    }
    freeIfCopy(gc, g);
    const paramGrads = (
      [
        [p.scale, gs],
        [p.weight, gw],
        [p.bias, gbias],
      ] as const
    )
      .filter(([t]) => t !== null)
      .map(([, gt]) => gt);
    return [ga, gb, ...paramGrads];
  });
}

/**
 * { sum: a + b·scale·c, out: norm(sum)·weight + bias } — a pre-norm residual stream and the next
 * sub-layer's input in one pass. The sum is rounded to the dtype before it is normalised, exactly as
 * the unfused add followed by the norm.
 */
export function addThenNorm(a: Tensor, b: Tensor, o: AddNormOptions = {}): { sum: Tensor; out: Tensor } {
  const p = prepare('addThenNorm', a, b, o);
  const engine = a.engine;
  const ac = asContiguous(a),
    bc = asContiguous(b);
  const sum = emptyLike(a),
    out = emptyLike(a);
  const stats = emptyLike(a, [p.rows, 2], statsDType(a));
  if (out.size > 0) engine.addNorm(kernelArgs(p, ac, bc), out.dense(), sum.dense(), stats.dense());
  freeIfCopy(ac, a);
  freeIfCopy(bc, b);
  const recordedSum = recordResidualAdd(sum, a, b, p);
  return {
    sum: recordedSum,
    out: recordNorm(
      p.rms ? 'rmsNorm' : 'layerNorm',
      p.rms,
      out,
      recordedSum,
      sum,
      p.weight,
      p.bias,
      stats,
      p.rows,
      p.cols,
    ),
  };
}

/** `addNorm` composed of the elementwise ops and the norm (several passes; the same values). */
export function addNormComposed(a: Tensor, b: Tensor, o: AddNormOptions = {}): Tensor {
  const p = prepare('addNorm', a, b, o);
  return normOf(add(a, scaledResidual(b, p)), p);
}

/** `addThenNorm` composed of the elementwise ops and the norm. */
export function addThenNormComposed(a: Tensor, b: Tensor, o: AddNormOptions = {}): { sum: Tensor; out: Tensor } {
  const p = prepare('addThenNorm', a, b, o);
  const sum = add(a, scaledResidual(b, p));
  return { sum, out: normOf(sum, p) };
}

/** The gradient record of sum = a + b·scale·c. */
function recordResidualAdd(sum: Tensor, a: Tensor, b: Tensor, p: Prepared): Tensor {
  return record(sum, 'residualAdd', p.scale ? [a, b, p.scale] : [a, b], (g) => {
    const ga = g.view(g.shape, g.strides, g.offset);
    let gb: Tensor | null = null,
      gs: Tensor | null = null;
    if (b.requiresGrad) {
      if (p.scale) {
        const factor = emptyLike(p.scale);
        if (factor.size > 0) g.engine.unary('scale', p.scale.dense(p.op), factor.dense(), factor.size, p.c);
        gb = binaryRaw('mul', g, factor, p.op);
        factor.dispose();
      } else {
        gb = emptyLike(b);
        const gc = asContiguous(g);
        if (gb.size > 0) g.engine.unary('scale', gc.dense(), gb.dense(), gb.size, p.c);
        freeIfCopy(gc, g);
      }
    }
    if (p.scale?.requiresGrad) {
      const product = binaryRaw('mul', g, b, p.op);
      const summed = reduceRaw('sum', product, [...Array(g.rank - 1).keys()], false);
      product.dispose();
      gs = emptyLike(p.scale);
      if (gs.size > 0) g.engine.unary('scale', summed.dense(), gs.dense(), gs.size, p.c);
      summed.dispose();
    }
    return p.scale ? [ga, gb, gs] : [ga, gb];
  });
}
