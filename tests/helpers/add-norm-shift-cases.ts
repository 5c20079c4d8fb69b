// The cases addNormShift (src/ops/paged.ts, Engine.addNormShift) is checked on, on any engine: a decode step's
// add + norm whose output is token-shifted through the tail pool and stored as its position's tail, against the
// composition it replaces — addNorm (addThenNorm with the sum kept), then pagedTokenShiftAndTailWrite of its
// output, op by op on the same engine. Each step holds sequences at their first position, inside a block, on a
// block's first position and far in; one whose context passes maxContextLen (unusable: its row is normed, nothing
// shifted or stored) and one whose current block id is out of range (its row reads its earlier tails but stores none).
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Generator } from '../../src/tensor/random.js';
import { addNorm, addThenNorm, type AddNormOptions } from '../../src/ops/fused/add-norm.js';
import { addNormShift, pagedTokenShiftAndTailWrite, type PagedBatch } from '../../src/ops/paged.js';

export interface AddNormShiftCase {
  dim: number;
  shifts: number;
  ring: number;
  rms: boolean;
  keepSum: boolean;
  /** A learned residual scale and DeepNorm's constant. */
  scaled: boolean;
}

export const ADD_NORM_SHIFT_CASES: readonly AddNormShiftCase[] = [
  { dim: 2560, shifts: 1, ring: 1, rms: false, keepSum: false, scaled: true }, // andromeda-3b (DeepNorm)
  { dim: 64, shifts: 2, ring: 2, rms: true, keepSum: true, scaled: false }, // chunks of 21: CUDA composes
  { dim: 6144, shifts: 1, ring: 3, rms: false, keepSum: true, scaled: false }, // two packs a thread on CUDA
  { dim: 72, shifts: 2, ring: 4, rms: false, keepSum: false, scaled: true }, // three chunks of 24
  { dim: 30, shifts: 1, ring: 1, rms: true, keepSum: false, scaled: true }, // unvectorised: CUDA composes
  { dim: 16, shifts: 0, ring: 1, rms: false, keepSum: true, scaled: false }, // no shift: the tail write alone
];

/** Positions of the step's usable sequences (one row each). */
const POSITIONS = [0, 5, 16, 1, 47];
const BLOCK_SIZE = 16;

export interface AddNormShiftOutputs {
  /** Rows the fused op must have written: out and sum for every row, shifted for the owned ones. */
  fused: { out: number[]; sum: number[] | null; shifted: number[]; tails: number[] };
  composed: { out: number[]; sum: number[] | null; shifted: number[]; tails: number[] };
  /** Rows of `shifted` that a usable sequence owns (the others are unspecified). */
  ownedRows: number[];
}

/** A step of the case's sequences: one row each, rows in a shuffled order; the last two rows are the odd ones. */
function stepBatch(device: string, numBlocks: number): { batch: PagedBatch; rows: number; ownedRows: number[] } {
  const rowOf = [3, 0, 6, 1, 4, 2, 5]; // sequence s owns row rowOf[s]
  const seqs = POSITIONS.length + 2;
  const width = 4;
  const table = new Int32Array(seqs * width).fill(-1);
  let next = 0;
  const contexts: number[] = [];
  for (let s = 0; s < seqs; s++) {
    const position = s < POSITIONS.length ? POSITIONS[s]! : 20;
    contexts.push(position + 1);
    for (let b = 0; b <= Math.floor(position / BLOCK_SIZE); b++) table[s * width + b] = next++ % numBlocks;
  }
  contexts[POSITIONS.length] = 61; // past maxContextLen: the whole sequence is unusable
  table[(POSITIONS.length + 1) * width + 1] = numBlocks + 5; // position 20's block: out of range
  // queryStart must be ascending: sequences are listed in row order, each naming its one row.
  const order = Array.from({ length: seqs }, (_, s) => s).sort((a, b) => rowOf[a]! - rowOf[b]!);
  const queryStart = [0, ...order.map((_, i) => i + 1)];
  const permutedTable = new Int32Array(seqs * width);
  order.forEach((s, i) => permutedTable.set(table.subarray(s * width, (s + 1) * width), i * width));
  const batch: PagedBatch = {
    queryStart: Tensor.fromArray(queryStart, [seqs + 1], 'int32', device),
    contextLens: Tensor.fromArray(
      order.map((s) => contexts[s]!),
      [seqs],
      'int32',
      device,
    ),
    blockTables: Tensor.fromArray(permutedTable, [seqs, width], 'int32', device),
    blockSize: BLOCK_SIZE,
    maxQueryLen: 1,
    maxContextLen: 60,
  };
  const ownedRows = order.map((s, row) => (s === POSITIONS.length ? -1 : row)).filter((r) => r >= 0);
  return { batch, rows: seqs, ownedRows };
}

/** Runs one case both ways on `device` in `dtype`. */
export function runAddNormShiftCase(
  c: AddNormShiftCase,
  dtype: DType,
  device: string,
  seed: number,
): AddNormShiftOutputs {
  const gen = new Generator(seed);
  const numBlocks = 12;
  const { batch, rows, ownedRows } = stepBatch(device, numBlocks);
  const values = (shape: number[], scale: number, offset: number) =>
    Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + scale * gen.normal());
  const random = (shape: number[], scale = 1, offset = 0) =>
    Tensor.fromArray(values(shape, scale, offset), shape, dtype, device);
  const branch = random([rows, c.dim]);
  const residual = random([rows, c.dim], 2);
  const weight = random([c.dim], 0.2, 1);
  const bias = c.rms ? null : random([c.dim], 0.1);
  const scale = c.scaled ? random([c.dim], 0.1, 1) : null;
  const options: AddNormOptions = {
    rms: c.rms,
    weight,
    bias,
    eps: 1e-5,
    residualScale: scale,
    residualConstant: c.scaled ? 2.3784142300054421 : 1,
  };
  // Earlier positions' tails: values no norm makes, so that a read of the wrong slot shows.
  const tailsShape = [numBlocks, c.ring, c.dim];
  const tailsStart = values(tailsShape, 3, 10);
  const read = (t: Tensor) => Array.from(t.toArray(), Number);
  const tailsFused = Tensor.fromArray(tailsStart, tailsShape, dtype, device);
  const tailsComposed = Tensor.fromArray(tailsStart, tailsShape, dtype, device);
  const owned: Tensor[] = [branch, residual, weight, tailsFused, tailsComposed];
  if (bias) owned.push(bias);
  if (scale) owned.push(scale);
  try {
    const f = addNormShift(branch, residual, options, c.keepSum, tailsFused, batch, c.shifts);
    const composedNorm = c.keepSum
      ? addThenNorm(branch, residual, options)
      : { out: addNorm(branch, residual, options), sum: null };
    const composedShift = pagedTokenShiftAndTailWrite(composedNorm.out, tailsComposed, batch, c.shifts);
    owned.push(f.out, f.shifted, composedNorm.out, composedShift);
    if (f.sum) owned.push(f.sum);
    if (composedNorm.sum) owned.push(composedNorm.sum);
    return {
      fused: { out: read(f.out), sum: f.sum && read(f.sum), shifted: read(f.shifted), tails: read(tailsFused) },
      composed: {
        out: read(composedNorm.out),
        sum: composedNorm.sum && read(composedNorm.sum),
        shifted: read(composedShift),
        tails: read(tailsComposed),
      },
      ownedRows,
    };
  } finally {
    for (const t of owned) t.dispose();
    for (const t of [batch.queryStart, batch.contextLens, batch.blockTables]) t.dispose();
  }
}

/** The owned rows of a [rows, dim] array. */
export function ownedRowsOf(values: readonly number[], rows: readonly number[], dim: number): number[] {
  return rows.flatMap((r) => values.slice(r * dim, (r + 1) * dim));
}
