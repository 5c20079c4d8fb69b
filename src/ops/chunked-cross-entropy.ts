// Cross-entropy of a linear output head, computed a block of rows at a time so that the
// [rows, vocab] logits never exist at once: at 32k tokens and a 50k vocabulary they would take 6.6 GB
// in float32 (3.3 GB in bfloat16), and their gradient as much again. Forward keeps only the per-row
// log-sum-exp; backward recomputes each block's logits, turns them into softmax − onehot in place and
// folds them into the gradients of the hidden states, the weight and the bias before the next block.
import { Tensor } from '../tensor/tensor.js';
import { formatShape } from '../tensor/shape.js';
import { record } from '../autograd/tape.js';
import type { MatmulArgs } from '../engine/engine.js';
import { hostInts } from '../tensor/host-ints.js';
import { assertDType, assertFloat, assertSameDType, assertSameDevice, emptyLike } from './util.js';
import { contiguousRaw } from './raw.js';
import { asContiguous, freeIfCopy, statsDType } from './norm-record.js';

/** Rows per block by default: 4,096 × 50,432 bfloat16 logits are 0.4 GB, large enough to keep GEMMs efficient. */
export const DEFAULT_CROSS_ENTROPY_CHUNK_ROWS = 4096;

/**
 * The automatic rule wherever a loss over `rows` target rows is computed or planned: chunked above one block of
 * rows (below it the full logits are no larger than a block, and the chunked form's second head product in the
 * backward pass would cost time for nothing).
 */
export function lossIsChunked(rows: number, chunkRows: number = DEFAULT_CROSS_ENTROPY_CHUNK_ROWS): boolean {
  return rows > chunkRows;
}

export interface ChunkedCrossEntropyOptions {
  /** Target value whose rows contribute no loss and no gradient. Default −100. */
  ignoreIndex?: number;
  /** 'mean' over the rows not ignored (default) or 'sum'. */
  reduction?: 'mean' | 'sum';
  /** Rows whose logits exist at once (default DEFAULT_CROSS_ENTROPY_CHUNK_ROWS). */
  chunkRows?: number;
  /**
   * Logit soft-cap: the loss is of cap · tanh(logits / cap) (Gemma 2's final_logit_softcapping); null or absent
   * for none. The backward keeps one more block of logits (the uncapped ones, for tanh's derivative).
   */
  softCap?: number | null;
}

/**
 * The cross-entropy of logits = hidden · weightᵀ + bias against int32 targets, without materialising
 * the logits of all rows: hidden [rows, dim], weight [vocab, dim], bias [vocab] or null, targets [rows].
 * Same value and gradients as crossEntropy(linear(hidden, weight, bias), targets), block by block
 * (each block's logits are formed in hidden's dtype, as the unchunked head forms them); with o.softCap, of
 * cap · tanh(logits / cap).
 */
export function chunkedLinearCrossEntropy(
  hidden: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  targets: Tensor,
  o: ChunkedCrossEntropyOptions = {},
): Tensor {
  const op = 'chunkedLinearCrossEntropy';
  const floats: Record<string, Tensor> = bias ? { hidden, weight, bias } : { hidden, weight };
  assertSameDevice(op, { ...floats, targets });
  assertSameDType(op, floats);
  assertFloat(op, 'hidden', hidden);
  assertDType(op, 'targets', targets, 'int32');
  if (hidden.rank !== 2 || weight.rank !== 2 || weight.shape[1] !== hidden.shape[1])
    throw new RangeError(
      `${op}: hidden must be [rows, dim] and weight [vocab, dim], got ${formatShape(hidden.shape)} and ` +
        `${formatShape(weight.shape)}`,
    );
  const [rows, dim] = hidden.shape as [number, number];
  const vocab = weight.shape[0]!;
  if (bias && (bias.rank !== 1 || bias.shape[0] !== vocab))
    throw new RangeError(`${op}: bias ${formatShape(bias.shape)} does not match weight ${formatShape(weight.shape)}`);
  if (targets.rank !== 1 || targets.shape[0] !== rows)
    throw new RangeError(
      `${op}: targets ${formatShape(targets.shape)} do not match hidden ${formatShape(hidden.shape)}`,
    );
  const chunkRows = o.chunkRows ?? DEFAULT_CROSS_ENTROPY_CHUNK_ROWS;
  if (!Number.isInteger(chunkRows) || chunkRows < 1)
    throw new RangeError(`${op}: chunkRows must be a positive integer, got ${chunkRows}`);
  const reduction = o.reduction ?? 'mean';
  if (reduction !== 'mean' && reduction !== 'sum')
    throw new RangeError(`${op}: reduction must be 'mean' or 'sum', got '${String(reduction)}'`);
  const ignoreIndex = o.ignoreIndex ?? -100;
  const softCap = o.softCap ?? null;
  if (softCap !== null && !(Number.isFinite(softCap) && softCap > 0))
    throw new RangeError(`${op}: softCap must be a positive number (or null), got ${softCap}`);

  const tc = asContiguous(targets);
  const counted = countTargets(op, hostInts(targets) ?? (tc.toArray() as Int32Array), vocab, ignoreIndex, () =>
    freeIfCopy(tc, targets),
  );
  const hc = asContiguous(hidden);
  const wc = asContiguous(weight);
  const bc = bias ? asContiguous(bias) : null;
  const engine = hidden.engine;
  const sdt = statsDType(hidden);
  const blocks = rowBlocks(rows, chunkRows);
  const blockRows = Math.min(chunkRows, rows);

  /** logits of rows [start, start + count) into `out` ([count, vocab], hidden's dtype). */
  const blockLogits = (start: number, count: number, out: Tensor): void => {
    const product: MatmulArgs = {
      a: rowsOf(hc, start, dim),
      b: wc.dense(op),
      c: out.dense(),
      m: count,
      n: vocab,
      k: dim,
      transA: false,
      transB: true,
      lda: dim,
      ldb: dim,
      ldc: vocab,
      strideA: 0,
      strideB: 0,
      strideC: 0,
      batch: 1,
      alpha: 1,
      beta: 0,
    };
    if (dim > 0) {
      if (bc) engine.matmulBias(product, bc.dense(op));
      else engine.matmul(product);
    } else if (bc) {
      // An empty product: the logits are the bias rows.
      engine.copy({ ...bc.dense(op), strides: [0, 1] }, { ...out.dense(), strides: [vocab, 1] }, [count, vocab]);
    } else engine.fill(out.dense(), count * vocab, 0);
  };

  /**
   * With a soft-cap, the block's logits z ([count, vocab] in `out`) become cap · tanh(z / cap); `divided` (same
   * size, or null) keeps z / cap for the backward's tanh derivative.
   */
  const capLogits = (count: number, out: Tensor, divided: Tensor | null): void => {
    if (softCap === null) return;
    const size = count * vocab;
    const scaled = divided ?? out;
    engine.unary('scale', out.dense(), scaled.dense(), size, 1 / softCap);
    engine.unary('tanh', scaled.dense(), out.dense(), size, 0);
    engine.unary('scale', out.dense(), out.dense(), size, softCap);
  };

  const losses = emptyLike(hidden, [rows], sdt);
  const lse = emptyLike(hidden, [rows], sdt);
  const total = emptyLike(hidden, [], sdt);
  if (rows > 0 && vocab > 0) {
    const logits = emptyLike(hidden, [blockRows, vocab]);
    for (const [start, count] of blocks) {
      blockLogits(start, count, logits);
      capLogits(count, logits, null);
      engine.crossEntropy(
        logits.dense(op),
        rowsOf(tc, start, 1),
        rowsOf(losses, start, 1),
        rowsOf(lse, start, 1),
        count,
        vocab,
        ignoreIndex,
      );
    }
    logits.dispose();
    engine.reduce('sum', losses.dense(), total.dense(), 1, rows, 1);
  } else engine.fill(total.dense(), 1, 0);
  losses.dispose();
  const scale = reduction === 'mean' ? 1 / Math.max(counted, 1) : 1;
  const out = emptyLike(total);
  engine.unary('scale', total.dense(), out.dense(), 1, scale);
  total.dispose();

  const inputs = bias ? [hidden, weight, bias] : [hidden, weight];
  const recorded = record(out, op, inputs, (g, into) => {
    // Every row's upstream gradient is the scalar's, times the mean's 1/count.
    const gs = g.dtype === sdt ? g : contiguousRaw(g, sdt);
    const scaled = emptyLike(gs, []);
    engine.unary('scale', gs.dense(), scaled.dense(), 1, scale);
    if (gs !== g) gs.dispose();
    const perRow = emptyLike(hidden, [Math.max(rows, 1)], sdt);
    engine.copy({ ...scaled.strided(), strides: [0] }, perRow.strided(), [rows]);
    scaled.dispose();

    const gHidden = hidden.requiresGrad ? emptyLike(hidden, [rows, dim]) : null;
    const gWeight = weight.requiresGrad ? (into[1] ?? emptyLike(weight, [vocab, dim])) : null;
    const gBias = bias?.requiresGrad ? (into[2] ?? emptyLike(bias, [vocab])) : null;
    const accumulating = { weight: into[1] !== undefined, bias: into[2] !== undefined };
    if (rows === 0 || vocab === 0) {
      // No logits: the hidden states get zeros (when vocab is empty) and the parameters nothing.
      if (gHidden && gHidden.size > 0) engine.fill(gHidden.dense(), gHidden.size, 0);
      if (gWeight && !accumulating.weight && gWeight.size > 0) engine.fill(gWeight.dense(), gWeight.size, 0);
      if (gBias && !accumulating.bias && gBias.size > 0) engine.fill(gBias.dense(), gBias.size, 0);
    } else {
      const grad = emptyLike(hidden, [blockRows, vocab]);
      const divided = softCap !== null ? emptyLike(hidden, [blockRows, vocab]) : null;
      const biasPart = gBias ? emptyLike(bias!, [vocab]) : null;
      for (const [i, [start, count]] of blocks.entries()) {
        blockLogits(start, count, grad);
        capLogits(count, grad, divided);
        // softmax − onehot, scaled per row, overwrites the block's logits element by element.
        engine.crossEntropyGrad(
          grad.dense(op),
          rowsOf(tc, start, 1),
          rowsOf(lse, start, 1),
          rowsOf(perRow, start, 1),
          grad.dense(),
          count,
          vocab,
          ignoreIndex,
        );
        // d(cap · tanh(z / cap))/dz = tanh'(z / cap).
        if (divided) engine.unaryGrad('tanh', divided.dense(), grad.dense(), grad.dense(), count * vocab);
        if (gHidden && dim > 0)
          engine.matmul({
            a: grad.dense(),
            b: wc.dense(op),
            c: rowsOf(gHidden, start, dim),
            m: count,
            n: dim,
            k: vocab,
            transA: false,
            transB: false,
            lda: vocab,
            ldb: dim,
            ldc: dim,
            strideA: 0,
            strideB: 0,
            strideC: 0,
            batch: 1,
            alpha: 1,
            beta: 0,
          });
        const first = i === 0 && !accumulating.weight;
        if (gWeight && dim > 0)
          engine.matmul({
            a: grad.dense(),
            b: rowsOf(hc, start, dim),
            c: gWeight.dense(),
            m: vocab,
            n: dim,
            k: count,
            transA: true,
            transB: false,
            lda: vocab,
            ldb: dim,
            ldc: dim,
            strideA: 0,
            strideB: 0,
            strideC: 0,
            batch: 1,
            alpha: 1,
            beta: first ? 0 : 1,
          });
        if (gBias && biasPart) {
          const target = i === 0 && !accumulating.bias ? gBias : biasPart;
          engine.reduce('sum', grad.dense(), target.dense(), 1, count, vocab);
          if (target !== gBias) engine.binary('add', gBias.strided(), biasPart.strided(), gBias.dense(), [vocab]);
        }
      }
      grad.dispose();
      divided?.dispose();
      biasPart?.dispose();
    }
    perRow.dispose();
    return bias ? [gHidden, gWeight, gBias] : [gHidden, gWeight];
  });
  if (!recorded.gradFn) {
    // Nothing will run backward: what it would have read is freed now rather than with the scope.
    lse.dispose();
    freeIfCopy(tc, targets);
    freeIfCopy(hc, hidden);
    freeIfCopy(wc, weight);
    if (bc && bias) freeIfCopy(bc, bias);
  }
  return recorded;
}

/** [start, count] of consecutive blocks of at most `size` rows covering `rows`. */
function rowBlocks(rows: number, size: number): [number, number][] {
  const blocks: [number, number][] = [];
  for (let start = 0; start < rows; start += size) blocks.push([start, Math.min(size, rows - start)]);
  return blocks;
}

/** The dense region of a contiguous [rows, width] tensor from row `start` on. */
function rowsOf(t: Tensor, start: number, width: number) {
  const d = t.dense();
  return { ...d, offset: d.offset + start * width };
}

/** Rows whose target is not ignoreIndex; throws on a target outside [0, vocab) (after `cleanup`). */
function countTargets(op: string, host: Int32Array, vocab: number, ignoreIndex: number, cleanup: () => void): number {
  let counted = 0;
  for (let i = 0; i < host.length; i++) {
    const t = host[i]!;
    if (t === ignoreIndex) continue;
    if (t < 0 || t >= vocab) {
      cleanup();
      throw new RangeError(
        `${op}: target ${t} at position ${i} is out of range [0, ${vocab}) (ignoreIndex is ${ignoreIndex})`,
      );
    }
    counted++;
  }
  return counted;
}
