// The optimizer step of andromeda-3b on its own: the global gradient norm (sumOfSquaresMany over the bf16
// gradients) and the many-tensor AdamW writing the bf16 weights (adamwMany), over tensors of the model's
// shapes (2.46B parameters), against a device copy of the same bytes. GB/s counts the bytes that must move:
// 2 per parameter for the norm, 28 for AdamW (float32 weight, m, v read and written; bf16 gradient read;
// bf16 weight written). The one-tensor kernel (adamwWithShadow per tensor) is timed for comparison.
//   node dist/bench/gpu-optimizer.js [layers (default 32)]
import { getEngine, type AdamWItem, type Dense } from '../src/engine/index.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import { DTYPE_BYTES, type DType } from '../src/tensor/dtype.js';

const gpu = getEngine('cuda') as CudaEngine;
const layers = Number(process.argv[2] ?? 32);
const dim = 2560,
  inner = 3072,
  kv = 256,
  ff = 10240,
  vocab = 50432;
const sizes = [vocab * dim, vocab * dim, dim];
for (let l = 0; l < layers; l++)
  sizes.push(dim * inner, dim * kv, dim * kv, inner * dim, dim * ff, ff, ff * dim, dim, dim, dim, dim, 128, 128);
const params = sizes.reduce((a, b) => a + b, 0);

const handles: number[] = [];
function buffer(dtype: DType, count: number, value: number): Dense {
  const handle = gpu.alloc(count * DTYPE_BYTES[dtype]);
  handles.push(handle);
  const d: Dense = { handle, offset: 0, dtype };
  gpu.fill(d, count, value);
  return d;
}

function time(fn: () => void, reps = 5): number {
  fn();
  gpu.synchronize();
  const samples: number[] = [];
  for (let s = 0; s < reps; s++) {
    const t0 = performance.now();
    fn();
    gpu.synchronize();
    samples.push(performance.now() - t0);
  }
  return samples.sort((a, b) => a - b)[Math.floor(reps / 2)]!;
}

const items: AdamWItem[] = sizes.map((count) => ({
  param: buffer('float32', count, 0.5),
  m: buffer('float32', count, 0.01),
  v: buffer('float32', count, 1e-4),
  grad: buffer('bfloat16', count, 0.1),
  shadow: buffer('bfloat16', count, 0),
  count,
}));
const args = {
  lr: 1e-4,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  biasCorrection1: 0.1,
  biasCorrection2: 0.05,
  gradScale: 0.5,
};
console.log(
  `# ${gpu.description}; ${sizes.length} tensors, ${params.toLocaleString('en')} parameters (andromeda-3b ` +
    `shapes, ${layers} layers)\n`,
);
console.log('| step | ms | GB/s |\n|---|---|---|');
const report = (name: string, bytes: number, ms: number) =>
  console.log(`| ${name} | ${ms.toFixed(2)} | ${(bytes / (ms * 1e-3) / 1e9).toFixed(0)} |`);

const copyCount = 1 << 30; // 4 GiB of float32 each way
const src = buffer('float32', copyCount, 1),
  dst = buffer('float32', copyCount, 0);
report(
  'device copy, 4 GiB (cudaMemcpyAsync)',
  2 * 4 * copyCount,
  time(() => gpu.copy({ ...src, strides: [1] }, { ...dst, strides: [1] }, [copyCount])),
);
report(
  'gradient norm: sumOfSquaresMany (bf16, with the host wait)',
  2 * params,
  time(() => gpu.sumOfSquaresMany(items.map((i) => ({ x: i.grad, count: i.count })))),
);
report(
  'AdamW: adamwMany (bf16 grad, bf16 weight copy)',
  28 * params,
  time(() => gpu.adamwMany(items, args)),
);
report(
  'AdamW: adamwMany per tensor',
  28 * params,
  time(() => {
    for (const i of items) gpu.adamwMany([i], args);
  }),
);
for (const h of handles) gpu.free(h);
