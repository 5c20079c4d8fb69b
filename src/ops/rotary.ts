// Rotary position embedding with xPos (and a scalar multiplier, the attention scale for queries) as
// an autograd op over the engine's rotary kernel. The transform is linear in x: its gradient applies
// the transposed rotation with the same factors.
import { Tensor } from '../tensor/tensor.js';
import { formatShape } from '../tensor/shape.js';
import { record } from '../autograd/tape.js';
import { assertFloat, emptyLike } from './util.js';
import { contiguousRaw } from './raw.js';
import { tokenRegion, type TokenRows } from './token-rows.js';

export interface RotarySpec {
  /** Rotated features at the start of each head (even, ≤ head dim). */
  readonly rotaryDim: number;
  /** rotaryDim / 2 inverse frequencies. */
  readonly invFreq: Float64Array;
  /** Token positions, or null for j + positionOffset. */
  readonly positions: TokenRows | null;
  readonly positionOffset: number;
  /** xPos factor ζ^(max(sign·(p − anchor), minDistance) / scaleBase), or null for none (see RotaryArgs). */
  readonly xpos: {
    readonly scaleBase: number;
    readonly anchor: number;
    readonly sign: 1 | -1;
    readonly minDistance: number;
  } | null;
  /** Multiplies every feature. */
  readonly multiplier: number;
}

/**
 * x [batch, heads, length, headDim] → multiplier · xPos · R(p) x on the rotated features, multiplier · x on the rest.
 */
export function rotary(x: Tensor, spec: RotarySpec): Tensor {
  const op = 'rotary';
  x.assertAlive(op, 'x');
  assertFloat(op, 'x', x);
  if (x.rank !== 4)
    throw new RangeError(`${op}: x must be [batch, heads, length, headDim], got ${formatShape(x.shape)}`);
  const headDim = x.shape[3]!;
  if (!Number.isInteger(spec.rotaryDim) || spec.rotaryDim % 2 !== 0 || spec.rotaryDim < 0 || spec.rotaryDim > headDim) {
    throw new RangeError(`${op}: rotaryDim ${spec.rotaryDim} must be even and at most the head dim ${headDim}`);
  }
  if (spec.invFreq.length !== spec.rotaryDim / 2)
    throw new RangeError(`${op}: ${spec.invFreq.length} inverse frequencies for ${spec.rotaryDim} rotated features`);
  if (spec.xpos && !(spec.xpos.scaleBase > 0))
    throw new RangeError(`${op}: xPos scale base ${spec.xpos.scaleBase} must be positive`);
  const out = rotaryRaw(x, spec, false);
  return record(out, op, [x], (g) => [rotaryRaw(g, spec, true)]);
}

function rotaryRaw(x: Tensor, spec: RotarySpec, transpose: boolean): Tensor {
  const op = 'rotary';
  const [batch, heads, length, headDim] = x.shape as [number, number, number, number];
  const positions = tokenRegion(op, 'positions', spec.positions, batch, length, x.device);
  const xc = x.isContiguous() ? x : contiguousRaw(x);
  const out = emptyLike(x);
  if (out.size > 0) {
    x.engine.rotary(xc.dense(op), out.dense(), {
      batch,
      heads,
      length,
      headDim,
      rotaryDim: spec.rotaryDim,
      invFreq: spec.invFreq,
      positions,
      positionStride: spec.positions?.stride ?? 0,
      positionOffset: spec.positionOffset,
      xposScaleBase: spec.xpos?.scaleBase ?? 0,
      xposAnchor: spec.xpos?.anchor ?? 0,
      xposSign: spec.xpos?.sign ?? 1,
      xposMinDistance: spec.xpos?.minDistance ?? -Infinity,
      multiplier: spec.multiplier,
      transpose,
    });
  }
  if (xc !== x) xc.dispose();
  return out;
}
