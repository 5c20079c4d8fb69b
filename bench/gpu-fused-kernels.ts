// The fused bandwidth kernels of a training step at andromeda-3b's shapes (batch 1 × 2,048), timed on the
// device's clock (events around each call, so host launch time is not counted), against the bytes each
// must move at least. Prints a markdown table.
//   node dist/bench/gpu-fused-kernels.js
import { getEngine, type Dense } from '../src/engine/index.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import { Generator } from '../src/tensor/random.js';
import { randomBuffer } from './gpu-buffers.js';

const gpu = getEngine('cuda') as CudaEngine;
const gen = new Generator(3);
const rows = 2048,
  dim = 2560,
  ff = 10240,
  heads = 24,
  headDim = 128;
const bf16 = (count: number, scale = 1, offset = 0): Dense => randomBuffer(gpu, gen, 'bfloat16', count, scale, offset);
const f32 = (count: number): Dense => randomBuffer(gpu, gen, 'float32', count, 0.1, 1);

/** Median device time of fn in microseconds over `reps` calls (events between calls). */
function deviceMicros(fn: () => void, reps = 30): number {
  fn();
  gpu.synchronize();
  gpu.timingRead();
  for (let i = 0; i < reps; i++) {
    gpu.timingMark();
    fn();
    gpu.timingMark();
  }
  const gaps = gpu.timingRead();
  const times = Array.from({ length: reps }, (_, i) => gaps[2 * i]! * 1000).sort((a, b) => a - b);
  return times[reps >> 1]!;
}

const a = bf16(rows * dim),
  b = bf16(rows * dim),
  gy = bf16(rows * dim),
  out = bf16(rows * dim),
  ga = bf16(rows * dim),
  gb = bf16(rows * dim);
const w = bf16(dim, 0.1, 1),
  bias = bf16(dim, 0.1),
  gw = bf16(dim),
  gbias = bf16(dim),
  stats = f32(2 * rows);
const norm = { rms: false, a, b, scale: null, c: 2.83, weight: w, bias, rows, cols: dim, eps: 1e-5 };
const x = bf16(rows * ff),
  fbias = bf16(ff, 0.1),
  fout = bf16(rows * ff),
  fgy = bf16(rows * ff),
  fgx = bf16(rows * ff),
  fgb = bf16(ff);
const q = bf16(rows * heads * headDim),
  qs = bf16(heads * headDim, 0.1, 1),
  qout = bf16(rows * heads * headDim),
  qgy = bf16(rows * heads * headDim);
const qgx = bf16(rows * heads * headDim),
  qgs = bf16(heads * headDim),
  rstd = f32(rows * heads);
const head = { batch: 1, n: rows, heads, dim: headDim, eps: 1e-12 };
const MB = 1e6;
const cases: [string, number, () => void][] = [
  ['addNorm (a + 2.83·b, layer norm, affine)', 3 * rows * dim * 2, () => gpu.addNorm(norm, out, null, stats)],
  [
    'addNormGrad (grads of a, b, weight, bias)',
    5 * rows * dim * 2,
    () => gpu.addNormGrad(norm, stats, gy, { a: ga, b: gb, scale: null, weight: gw, bias: gbias }),
  ],
  [
    'addNormGrad (grads of a and b only)',
    5 * rows * dim * 2,
    () => gpu.addNormGrad(norm, stats, gy, { a: ga, b: gb, scale: null, weight: null, bias: null }),
  ],
  ['biasGelu [2048, 10240]', 2 * rows * ff * 2, () => gpu.biasGelu(x, fbias, fout, rows, ff)],
  [
    'biasGeluGrad (with the bias gradient)',
    3 * rows * ff * 2,
    () => gpu.biasGeluGrad(x, fbias, fgy, fgx, fgb, rows, ff),
  ],
  [
    'headNorm q [1, 2048, 24, 128] with scale',
    2 * rows * heads * headDim * 2,
    () => gpu.headNorm(head, q, qs, qout, rstd),
  ],
  [
    'headNormGrad (grads of q and the scale)',
    3 * rows * heads * headDim * 2,
    () => gpu.headNormGrad(head, q, qs, rstd, qgy, qgx, qgs),
  ],
];
console.log(`# ${gpu.description}\n\n| kernel | µs | bytes at least (MB) | GB/s |\n|---|---|---|---|`);
for (const [name, bytes, fn] of cases) {
  const us = deviceMicros(fn);
  console.log(`| ${name} | ${us.toFixed(1)} | ${(bytes / MB).toFixed(1)} | ${((bytes / MB / us) * 1000).toFixed(0)} |`);
}
