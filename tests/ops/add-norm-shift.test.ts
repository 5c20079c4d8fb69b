// addNormShift (src/ops/paged.ts) on the CPU engine: a decode step's add + norm, token shift of its output through
// the tail pool and tail write in one call give the bits of addNorm / addThenNorm and pagedTokenShiftAndTailWrite op
// by op (tests/helpers/add-norm-shift-cases.ts), in float64, float32 and bfloat16; bad arguments are refused by
// name before the engine runs; and a paged decode step of a token-shift model runs its norms through it (one
// launch less a sub-layer on CUDA) while its logits stay the dense forward's (tests/model/paged-forward.test.ts).
// The CUDA form: tests/gpu/add-norm-shift.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/index.js'; // registers the engines
import { Tensor } from '../../src/tensor/tensor.js';
import { getEngine } from '../../src/engine/registry.js';
import { zeros } from '../../src/ops/creation.js';
import { addNormShift, type PagedBatch } from '../../src/ops/paged.js';
import { presetInput } from '../../src/model/presets.js';
import { ADD_NORM_SHIFT_CASES, ownedRowsOf, runAddNormShiftCase } from '../helpers/add-norm-shift-cases.js';
import { BlockAllocator, pagedStep, testModel, type TestSequence } from '../model/paged-helpers.js';

test('addNormShift gives the bits of addNorm + pagedTokenShiftAndTailWrite on the CPU', () => {
  for (const [i, c] of ADD_NORM_SHIFT_CASES.entries())
    for (const dtype of ['float64', 'float32', 'bfloat16'] as const) {
      const { fused, composed, ownedRows } = runAddNormShiftCase(c, dtype, 'cpu', 31 + i);
      const what = `case ${i} (${JSON.stringify(c)}) in ${dtype}`;
      assert.deepEqual(fused.out, composed.out, `${what}: out`);
      assert.deepEqual(fused.sum, composed.sum, `${what}: sum`);
      assert.deepEqual(fused.tails, composed.tails, `${what}: tails`);
      assert.deepEqual(
        ownedRowsOf(fused.shifted, ownedRows, c.dim),
        ownedRowsOf(composed.shifted, ownedRows, c.dim),
        `${what}: shifted rows`,
      );
    }
});

test('addNormShift refuses bad arguments by name', () => {
  const rows = zeros([2, 8]);
  const tails = zeros([3, 1, 8]);
  const batch = (o: Partial<PagedBatch> = {}): PagedBatch => ({
    queryStart: Tensor.fromArray([0, 1, 2], [3], 'int32'),
    contextLens: Tensor.fromArray([1, 4], [2], 'int32'),
    blockTables: Tensor.fromArray([0, 1], [2, 1], 'int32'),
    blockSize: 16,
    maxQueryLen: 1,
    maxContextLen: 16,
    ...o,
  });
  const cases: [string, () => void, RegExp][] = [
    [
      'a prefill step',
      () => addNormShift(rows, rows, {}, false, tails, batch({ maxQueryLen: 2 }), 1),
      /at most one row per sequence, got batch.maxQueryLen 2/,
    ],
    ['a ring shorter than the shifts', () => addNormShift(rows, rows, {}, false, tails, batch(), 2), /need at least/],
    ['negative shifts', () => addNormShift(rows, rows, {}, false, tails, batch(), -1), /shifts must be an integer/],
    [
      'tails of another width',
      () => addNormShift(rows, rows, {}, false, zeros([3, 1, 4]), batch(), 1),
      /tails must be \[numBlocks, ring, 8\]/,
    ],
    [
      'a residual of another shape',
      () => addNormShift(rows, zeros([2, 4]), {}, false, tails, batch(), 1),
      /differ in shape/,
    ],
    [
      'mixed dtypes',
      () => addNormShift(rows, rows, {}, false, zeros([3, 1, 8], 'float64'), batch(), 1),
      /dtype|float64/,
    ],
    [
      'a float block table',
      () => addNormShift(rows, rows, {}, false, tails, batch({ blockTables: zeros([2, 1]) }), 1),
      /blockTables must be int32/,
    ],
    [
      'a grad-requiring branch',
      () => {
        const x = zeros([2, 8]);
        x.requiresGrad = true;
        addNormShift(rows, x, {}, false, tails, batch(), 1);
      },
      /requires grad/,
    ],
  ];
  for (const [what, run, message] of cases) assert.throws(run, message, what);
});

test('a decode step norms through addNormShift: post-norm 2·depth − 1 times, pre-norm depth times', () => {
  const engine = getEngine('cpu');
  const original = engine.addNormShift.bind(engine);
  for (const [form, config, expected] of [
    ['pre-norm', presetInput('tiny'), (depth: number) => depth],
    ['post-norm (DeepNorm)', { ...presetInput('tiny'), deepnorm: true }, (depth: number) => 2 * depth - 1],
  ] as const) {
    const model = testModel(config, 3);
    const cache = model.createPagedKVCache(8, { blockSize: 8 });
    const allocator = new BlockAllocator(cache.numBlocks, 5);
    const seq: TestSequence = { tokens: [5, 9, 2, 7, 1, 3], cached: 0, blocks: [] };
    let calls = 0;
    engine.addNormShift = (...args) => {
      calls++;
      original(...args);
    };
    try {
      pagedStep(model, cache, allocator, [[seq, 5]], 'last'); // prefill: several rows a sequence, no fusion
      assert.equal(calls, 0, `${form}: prefill`);
      pagedStep(model, cache, allocator, [[seq, 1]], 'last');
      assert.equal(calls, expected(model.config.depth), `${form}: one decode step`);
    } finally {
      engine.addNormShift = original;
      cache.dispose();
      model.dispose();
    }
  }
});
