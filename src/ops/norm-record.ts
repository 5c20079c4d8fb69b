// Pieces shared by the norm ops (nn.ts) and the fused residual norms (add-norm.ts): argument checks
// and the autograd record of a norm whose forward kernel has already run.
import { Tensor } from '../tensor/tensor.js';
import { formatShape } from '../tensor/shape.js';
import { record } from '../autograd/tape.js';
import { emptyLike } from './util.js';
import { contiguousRaw } from './raw.js';

export const asContiguous = (t: Tensor): Tensor => (t.isContiguous() ? t : contiguousRaw(t));
export const freeIfCopy = (copy: Tensor, original: Tensor): void => {
  if (copy !== original) copy.dispose();
};
/** Per-row statistics are float64 for float64 tensors, else float32. */
export const statsDType = (t: Tensor) => (t.dtype === 'float64' ? 'float64' : 'float32') as 'float64' | 'float32';

/** Checks a norm's weight/bias against x's last axis; returns [rows, cols]. */
export function normShape(op: string, x: Tensor, weight: Tensor | null, bias: Tensor | null): [number, number] {
  const cols = x.shape[x.rank - 1]!;
  for (const [name, p] of [
    ['weight', weight],
    ['bias', bias],
  ] as const) {
    if (p && (p.rank !== 1 || p.shape[0] !== cols))
      throw new RangeError(
        `${op}: ${name} ${formatShape(p.shape)} does not match the last axis of x ${formatShape(x.shape)}`,
      );
  }
  return [cols === 0 ? 0 : x.size / cols, cols];
}

/** Records `out` = norm(x)·weight + bias (computed with `stats`); the backward reads xc (x, contiguous). */
export function recordNorm(
  op: string,
  rms: boolean,
  out: Tensor,
  x: Tensor,
  xc: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  stats: Tensor,
  rows: number,
  cols: number,
): Tensor {
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return record(out, op, inputs, (g) => {
    const gc = asContiguous(g);
    const gx = emptyLike(x);
    const gw = weight?.requiresGrad ? emptyLike(weight) : null;
    const gb = bias?.requiresGrad ? emptyLike(bias) : null;
    if (gx.size > 0)
      x.engine.normGrad(
        rms,
        xc.dense(op),
        weight?.dense(op) ?? null,
        stats.dense(),
        gc.dense(),
        gx.dense(),
        gw?.dense() ?? null,
        gb?.dense() ?? null,
        rows,
        cols,
      );
    freeIfCopy(gc, g);
    return [gx, ...(weight ? [gw] : []), ...(bias ? [gb] : [])];
  });
}
