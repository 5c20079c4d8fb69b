// The planner's mirror of the CUDA decode kernel's launch (src/plan/throughput.ts decodeKernelGrid /
// decodeKernelRuns against native/cuda/paged/heuristics.h decode_launch_shape and attention.cu decode_kernel_takes):
// the shapes below are the C++ rule's, worked by hand from its formula (bench/cuda/decode-splits.cu prints them too).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeKernelGrid, decodeKernelRuns } from '../../src/plan/throughput.js';
import { findGpu } from '../../src/plan/devices.js';
import { presetConfig } from '../../src/model/presets.js';

const H100_SMS = 132;

test('decodeKernelGrid: one wave of one CTA per multiprocessor, at least a slice for half the warps', () => {
  const grid = (units: number, keys: number) => decodeKernelGrid(units, keys, H100_SMS, units, 24, 128);
  // 2,048 keys: 128 slices, at most 32 splits (a slice for each of 4 warps of 8); 132 multiprocessors would take more.
  assert.deepEqual(grid(1, 2048), { splits: 32, chunk: 64, averageSlicesPerWarp: 0.5, waves: 1 });
  // 32,768 keys: 2,048 slices over 132 splits → chunks of 16 slices (256 keys), 128 splits used, 2 slices a warp.
  assert.deepEqual(grid(1, 32768), { splits: 128, chunk: 256, averageSlicesPerWarp: 2, waves: 1 });
  // 100,000 keys: 6,250 slices over 132 → 48 slices (768 keys) a split, 131 used, 6 slices a warp.
  assert.deepEqual(grid(1, 100_000), { splits: 131, chunk: 768, averageSlicesPerWarp: 6, waves: 1 });
  // 64 sequences × 2,048 keys: 132 / 64 → 2 splits of 1,024 keys, 8 slices a warp, 128 CTAs in one wave.
  assert.deepEqual(grid(64, 2048), { splits: 2, chunk: 1024, averageSlicesPerWarp: 8, waves: 1 });
  // More units than multiprocessors: one split each, in waves.
  assert.deepEqual(grid(200, 2048), { splits: 1, chunk: 2048, averageSlicesPerWarp: 16, waves: 2 });
  // Short contexts: one split, a partial slice.
  assert.deepEqual(grid(1, 5), { splits: 1, chunk: 16, averageSlicesPerWarp: 0.125, waves: 1 });
  assert.deepEqual(grid(1, 0), { splits: 1, chunk: 16, averageSlicesPerWarp: 0.125, waves: 1 });
});

test('decodeKernelGrid: fewer splits where the partial rows would pass 256 MiB', () => {
  // 100 rows × 24 heads × 130 floats = 1.25 MB a split: at most 214 splits; 1 unit would take 132 anyway.
  assert.equal(decodeKernelGrid(1, 1_000_000, H100_SMS, 100, 24, 128).splits, 132);
  // 20,000 rows × 24 heads × 130 × 4 B = 250 MB a split: one split only.
  assert.equal(decodeKernelGrid(1, 1_000_000, H100_SMS, 20_000, 24, 128).splits, 1);
});

test('decodeKernelRuns: bf16, groups up to 32, shared memory within the device opt-in limit', () => {
  const a3b = presetConfig('andromeda-3b');
  const h100 = findGpu('h100')!,
    a100 = findGpu('a100')!;
  assert.equal(decodeKernelRuns(a3b, 'bfloat16', h100), true); // 180.5 KB of 227
  assert.equal(decodeKernelRuns(a3b, 'bfloat16', a100), false); // 180.5 KB of 163
  assert.equal(decodeKernelRuns(a3b, 'float32', h100), false);
  assert.equal(decodeKernelRuns({ ...a3b, heads: 48, kvHeads: 1 }, 'bfloat16', h100), false);
  // Head dim 128 with rotary over the whole head and a key scale: 220.5 KB, still within an H100's limit.
  assert.equal(decodeKernelRuns({ ...a3b, rotary: { ...a3b.rotary!, dim: 128 } }, 'bfloat16', h100), true);
  const orca = presetConfig('orca');
  assert.equal(decodeKernelRuns(orca, 'bfloat16', a100), true); // head dim 64: 90.6 KB
});
