// Engine.addNormShift on CUDA (native/fused/add_norm/cuda.cu, the cached add + norm kernel with the token shift in
// its epilogue): a decode step's norm, shift of its output through the tail pool and tail write in one launch give
// the bits of addNorm / addThenNorm followed by pagedTokenShiftAndTailWrite on CUDA, and the CPU engine's values —
// at andromeda-3b's width, two packs a thread, chunks a pack would straddle and unvectorised rows (both sent to the
// composition), an unusable sequence and an out-of-range block id (tests/helpers/add-norm-shift-cases.ts).
import assert from 'node:assert/strict';
import { ADD_NORM_SHIFT_CASES, ownedRowsOf, runAddNormShiftCase } from '../helpers/add-norm-shift-cases.js';
import { gpuTest, relativeError } from './harness.js';

gpuTest(
  'addNormShift on CUDA: the bits of addNorm + pagedTokenShiftAndTailWrite on CUDA, the CPU engine’s values',
  () => {
    for (const [i, c] of ADD_NORM_SHIFT_CASES.entries())
      for (const [dtype, tol] of [
        ['float64', 1e-12],
        ['float32', 1e-5],
        ['bfloat16', 1e-2],
      ] as const) {
        const what = `case ${i} (${JSON.stringify(c)}) in ${dtype}`;
        const { fused, composed, ownedRows } = runAddNormShiftCase(c, dtype, 'cuda', 31 + i);
        const shifted = (values: readonly number[]) => ownedRowsOf(values, ownedRows, c.dim);
        assert.deepEqual(fused.out, composed.out, `${what}: out`);
        assert.deepEqual(fused.sum, composed.sum, `${what}: sum`);
        assert.deepEqual(fused.tails, composed.tails, `${what}: tails`);
        assert.deepEqual(shifted(fused.shifted), shifted(composed.shifted), `${what}: shifted rows`);
        const reference = runAddNormShiftCase(c, dtype, 'cpu', 31 + i).fused;
        for (const [part, got, want] of [
          ['out', fused.out, reference.out],
          ['tails', fused.tails, reference.tails],
          ['shifted rows', shifted(fused.shifted), shifted(reference.shifted)],
          ...(fused.sum && reference.sum ? [['sum', fused.sum, reference.sum] as const] : []),
        ] as const) {
          const error = relativeError(want, got);
          assert.ok(error <= tol, `${what}: ${part} differs from the CPU engine's by ${error}`);
        }
      }
  },
);
