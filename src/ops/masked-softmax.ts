// Attention probabilities of the reference form as an autograd op: the engine's maskedSoftmax kernel
// adds ALiBi and the causal/document masks to the scores while taking the row softmax, so no bias or
// mask tensor exists. The bias is constant, so the gradient is the plain softmax gradient.
import { Tensor } from '../tensor/tensor.js';
import { formatShape } from '../tensor/shape.js';
import { record } from '../autograd/tape.js';
import { assertFloat, emptyLike } from './util.js';
import { contiguousRaw } from './raw.js';
import { tokenRegion, type TokenRows } from './token-rows.js';

export interface ScoreMask {
  readonly causal: boolean;
  /** Key j is visible to query i when j ≤ i + queryOffset (causal); default query positions are i + queryOffset. */
  readonly queryOffset: number;
  /** [heads] ALiBi slopes (0 for heads without), or null. */
  readonly alibiSlopes: Float64Array | null;
  /** Null positions default to queryOffset + i (queries) and j (keys); null segments mean one document. */
  readonly queryPositions: TokenRows | null;
  readonly keyPositions: TokenRows | null;
  readonly querySegments: TokenRows | null;
  readonly keySegments: TokenRows | null;
}

/**
 * softmax(scores + ALiBi, masked) over the last axis of scores [batch, heads, queryLen, keyLen]; masked
 * entries are exactly 0 and a row that sees no key is all 0 (the caller reports those).
 * `inPlace`: the probabilities overwrite the scores (contiguous ones) and the result shares their
 * storage. The scores must then have no other reader: true of a matmul's output, whose backward
 * reads only its inputs; it saves the n × n buffer the probabilities would otherwise need besides them.
 */
export function maskedSoftmax(scores: Tensor, mask: ScoreMask, o: { inPlace?: boolean } = {}): Tensor {
  const op = 'maskedSoftmax';
  scores.assertAlive(op, 'scores');
  assertFloat(op, 'scores', scores);
  if (scores.rank !== 4)
    throw new RangeError(`${op}: scores must be [batch, heads, queryLen, keyLen], got ${formatShape(scores.shape)}`);
  const engine = scores.engine;
  const [batch, heads, queryLen, keyLen] = scores.shape as [number, number, number, number];
  if (mask.alibiSlopes && mask.alibiSlopes.length !== heads)
    throw new RangeError(`${op}: ${mask.alibiSlopes.length} ALiBi slopes for ${heads} heads`);
  if (!mask.querySegments !== !mask.keySegments)
    throw new RangeError(`${op}: give both querySegments and keySegments, or neither`);
  const queryStride = sharedStride(op, 'query', mask.queryPositions, mask.querySegments);
  const keyStride = sharedStride(op, 'key', mask.keyPositions, mask.keySegments);
  const args = {
    batch,
    heads,
    queryLen,
    keyLen,
    causal: mask.causal,
    queryOffset: mask.queryOffset,
    alibiSlopes: mask.alibiSlopes,
    queryPositions: tokenRegion(op, 'queryPositions', mask.queryPositions, batch, queryLen, scores.device),
    keyPositions: tokenRegion(op, 'keyPositions', mask.keyPositions, batch, keyLen, scores.device),
    querySegments: tokenRegion(op, 'querySegments', mask.querySegments, batch, queryLen, scores.device),
    keySegments: tokenRegion(op, 'keySegments', mask.keySegments, batch, keyLen, scores.device),
    queryStride,
    keyStride,
  };
  const inPlace = (o.inPlace ?? false) && scores.isContiguous();
  const source = scores.isContiguous() ? scores : contiguousRaw(scores);
  const out = inPlace ? scores.view(scores.shape, scores.strides, scores.offset) : emptyLike(scores);
  if (out.size > 0) engine.maskedSoftmax(source.dense(op), out.dense(op), args);
  if (source !== scores) source.dispose();
  const rows = batch * heads * queryLen;
  return record(out, op, [scores], (g) => {
    const gc = g.isContiguous() ? g : contiguousRaw(g);
    const gx = emptyLike(out);
    if (gx.size > 0) engine.softmaxGrad(out.dense(op), gc.dense(), gx.dense(), rows, keyLen, false);
    if (gc !== g) gc.dispose();
    return [gx];
  });
}

/** The kernel reads positions and segments of one side with one row stride. */
function sharedStride(op: string, side: string, positions: TokenRows | null, segments: TokenRows | null): number {
  if (positions && segments && positions.stride !== segments.stride) {
    throw new RangeError(
      `${op}: ${side} positions and segments must have the same row stride (${positions.stride} vs ${segments.stride})`,
    );
  }
  return positions?.stride ?? segments?.stride ?? 0;
}
