// writeHeadRows (src/ops/paged.ts) on the CPU engine: a paged step's query norm, key norm + scatter and value
// scatter in one call give the bits of headNorm and scatterRows op by op (tests/helpers/head-rows-cases.ts), in
// float64, float32 and bfloat16; bad arguments are refused by name before the engine runs. The CUDA form:
// tests/gpu/head-norm.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/index.js'; // registers the engines
import { Tensor } from '../../src/tensor/tensor.js';
import { writeHeadRows } from '../../src/ops/paged.js';
import { zeros } from '../../src/ops/creation.js';
import { HEAD_ROWS_CASES, runHeadRowsCase } from '../helpers/head-rows-cases.js';

test('writeHeadRows gives headNorm + scatterRows bits on the CPU, slots outside the pool skipped', () => {
  for (const [i, c] of HEAD_ROWS_CASES.entries())
    for (const dtype of ['float64', 'float32', 'bfloat16'] as const) {
      const { fused, composed } = runHeadRowsCase(c, dtype, 'cpu', 11 + i);
      const what = `case ${i} (${JSON.stringify(c)}) in ${dtype}`;
      assert.deepEqual(fused.q, composed.q, `${what}: queries`);
      assert.deepEqual(fused.keys, composed.keys, `${what}: key pool`);
      assert.deepEqual(fused.values, composed.values, `${what}: value pool`);
    }
});

test('writeHeadRows refuses bad arguments by name', () => {
  const x = zeros([2, 3, 8], 'float32');
  const pool = zeros([4, 2, 3, 8], 'float32');
  const slots = Tensor.fromArray([0, 5], [2], 'int32');
  const cases: [string, () => void, RegExp][] = [
    [
      'a wrong rank',
      () => writeHeadRows([{ x: zeros([6, 8]), into: pool, at: slots, norm: null }]),
      /rank|\[count, heads, dim\]/,
    ],
    [
      'rows that do not match',
      () => writeHeadRows([{ x, into: zeros([4, 5, 8]), at: slots, norm: null }]),
      /does not end in rows/,
    ],
    ['a float index', () => writeHeadRows([{ x, into: pool, at: zeros([2]), norm: null }]), /at must be int32/],
    [
      'an index of the wrong length',
      () => writeHeadRows([{ x, into: pool, at: Tensor.fromArray([1], [1], 'int32'), norm: null }]),
      /at must be int32 \[2\]/,
    ],
    [
      'too few rows without an index',
      () => writeHeadRows([{ x, into: zeros([1, 3, 8]), at: null, norm: null }]),
      /1 rows for the 2 rows/,
    ],
    [
      'a weight of the wrong shape',
      () => writeHeadRows([{ x, into: pool, at: slots, norm: { weight: zeros([3, 4]) } }]),
      /weight \[3, 4\] must be \[3, 8\]/,
    ],
    [
      'mixed dtypes',
      () => writeHeadRows([{ x, into: zeros([4, 2, 3, 8], 'float64'), at: slots, norm: null }]),
      /into is float64; every tensor must be float32/,
    ],
    [
      'an int32 x',
      () => writeHeadRows([{ x: zeros([2, 3, 8], 'int32'), into: zeros([2, 3, 8], 'int32'), at: null, norm: null }]),
      /float/,
    ],
    ['a negative eps', () => writeHeadRows([{ x, into: pool, at: slots, norm: null }], -1), /eps/],
    [
      'a head dim past 256',
      () => writeHeadRows([{ x: zeros([1, 1, 300]), into: zeros([1, 1, 300]), at: null, norm: null }]),
      /head dim 300/,
    ],
  ];
  for (const [what, call, message] of cases) assert.throws(call, message, what);
  const before = Array.from(pool.toArray());
  assert.deepEqual(Array.from(pool.toArray()), before, 'nothing was written by a refused call');
});
