// The cases writeHeadRows (src/ops/paged.ts, Engine.headNormRows) is checked on, on any engine: a paged step's
// query norm (scaled), key norm into a pool at slots, and value copy into a pool, against the composition it
// replaces — headNorm and scatterRows, op by op on the same engine. Slots include repeats of nothing, values outside
// the pool (skipped: the rows there keep their bits) and rows of a pool no slot names.
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Generator } from '../../src/tensor/random.js';
import { reshape } from '../../src/ops/layout.js';
import { zeros } from '../../src/ops/creation.js';
import { headNorm } from '../../src/ops/fused/head-norm.js';
import { scatterRows, writeHeadRows } from '../../src/ops/paged.js';

export interface HeadRowsCase {
  rows: number;
  heads: number;
  kvHeads: number;
  dim: number;
  poolRows: number;
  weighted: boolean;
  normalize: boolean;
}

export const HEAD_ROWS_CASES: readonly HeadRowsCase[] = [
  { rows: 1, heads: 24, kvHeads: 1, dim: 128, poolRows: 64, weighted: true, normalize: true }, // andromeda-3b decode
  { rows: 5, heads: 8, kvHeads: 2, dim: 64, poolRows: 40, weighted: false, normalize: true },
  { rows: 3, heads: 4, kvHeads: 4, dim: 80, poolRows: 16, weighted: true, normalize: true }, // the strided lanes
  { rows: 7, heads: 2, kvHeads: 1, dim: 256, poolRows: 32, weighted: true, normalize: true },
  { rows: 4, heads: 6, kvHeads: 2, dim: 32, poolRows: 12, weighted: false, normalize: false }, // scatter alone
  { rows: 2, heads: 3, kvHeads: 1, dim: 5, poolRows: 8, weighted: true, normalize: true },
];

export interface HeadRowsOutputs {
  fused: { q: number[]; keys: number[]; values: number[] };
  composed: { q: number[]; keys: number[]; values: number[] };
}

/** Runs one case both ways on `device` in `dtype`; slot -7 and poolRows + 3 are outside the pool. */
export function runHeadRowsCase(c: HeadRowsCase, dtype: DType, device: string, seed: number): HeadRowsOutputs {
  const gen = new Generator(seed);
  const random = (count: number, scale = 1, offset = 0) =>
    Float64Array.from({ length: count }, () => offset + scale * gen.normal());
  const make = (values: Float64Array, shape: number[]) => Tensor.fromArray(values, shape, dtype, device);
  const q = make(random(c.rows * c.heads * c.dim, 2), [c.rows, c.heads, c.dim]);
  const k = make(random(c.rows * c.kvHeads * c.dim, 3), [c.rows, c.kvHeads, c.dim]);
  const v = make(random(c.rows * c.kvHeads * c.dim), [c.rows, c.kvHeads, c.dim]);
  const weight = c.weighted ? make(random(c.heads * c.dim, 0.3, 1), [c.heads, c.dim]) : null;
  const slotValues = Int32Array.from({ length: c.rows }, (_, r) => (r * 5 + 2) % c.poolRows);
  if (c.rows > 2) slotValues[1] = -7;
  if (c.rows > 3) slotValues[3] = c.poolRows + 3;
  const slots = Tensor.fromArray(slotValues, [c.rows], 'int32', device);
  const poolShape = [c.poolRows / 4, 4, c.kvHeads, c.dim];
  const poolStart = random(c.poolRows * c.kvHeads * c.dim);
  const pools = () => ({ keys: make(poolStart, poolShape), values: make(poolStart, poolShape) });

  const fusedPools = pools();
  const fusedQ = zeros([c.rows, c.heads, c.dim], dtype, device);
  writeHeadRows([
    { x: q, into: fusedQ, at: null, norm: c.normalize ? { weight } : null },
    { x: k, into: fusedPools.keys, at: slots, norm: c.normalize ? { weight: null } : null },
    { x: v, into: fusedPools.values, at: slots, norm: null },
  ]);

  const composedPools = pools();
  const as3 = (t: Tensor, heads: number) => reshape(t, [c.rows, heads, c.dim]);
  const as4 = (t: Tensor, heads: number) => reshape(t, [c.rows, 1, heads, c.dim]);
  const composedQ = c.normalize ? as3(headNorm(as4(q, c.heads), weight), c.heads) : q;
  const composedK = c.normalize ? as3(headNorm(as4(k, c.kvHeads), null), c.kvHeads) : k;
  scatterRows(composedK, slots, composedPools.keys);
  scatterRows(v, slots, composedPools.values);

  const read = (t: Tensor) => Array.from(t.toArray(), Number);
  const out: HeadRowsOutputs = {
    fused: { q: read(fusedQ), keys: read(fusedPools.keys), values: read(fusedPools.values) },
    composed: {
      q: c.normalize ? read(composedQ) : read(q),
      keys: read(composedPools.keys),
      values: read(composedPools.values),
    },
  };
  const all = [q, k, v, weight, slots, fusedQ, composedQ, composedK, ...Object.values(fusedPools)];
  for (const t of new Set([...all, ...Object.values(composedPools)])) t?.dispose();
  return out;
}
