// The optimizer step of andromeda-3b on its own, float32 against 8-bit moments: adamwMany (float32 m and v) and
// adamw8bitMany (8-bit codes plus a float32 absmax per block of 256), both with bf16 gradients writing the bf16
// weight copy, over tensors of the model's shapes (2.46B parameters). Reports each step's time, the bytes it
// must move (28 per parameter with float32 moments, 16.03 with 8-bit ones) and the optimizer state each holds,
// as the engine's allocated bytes. The 8-bit step runs twice: on normally distributed gradients, whose moments
// spread over the codes as a real model's do, and on constant ones, whose equal moments make every lane of a warp
// search the quantization map for the same value (shared-memory broadcasts: the kernel's best case).
//   node dist/bench/gpu-adamw8bit.js [layers (default 32)]
import { getEngine, type AdamW8bitItem, type AdamWItem, type Dense } from '../src/engine/index.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import { DTYPE_BYTES, type DType } from '../src/tensor/dtype.js';
import { adamw8bitMaps } from '../src/optim/adamw8bit-map.js';
import { adamw8bitSlotSizes } from '../src/optim/adamw8bit.js';

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

function buffer(owner: number[], dtype: DType, count: number, value: number): Dense {
  const handle = gpu.alloc(count * DTYPE_BYTES[dtype]);
  owner.push(handle);
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

const shared: number[] = [];
const weights = sizes.map((count, i) => {
  const grad = buffer(shared, 'bfloat16', count, 0);
  gpu.randomFill(grad, count, 'normal', 0, 0.01, 1000 + i);
  return { count, param: buffer(shared, 'float32', count, 0.5), grad, shadow: buffer(shared, 'bfloat16', count, 0) };
});
const constantGrads = weights.map((w) => ({ ...w, grad: buffer(shared, 'bfloat16', w.count, 0.1) }));
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
console.log('| step | ms | GB/s | optimizer state | bytes/parameter |\n|---|---|---|---|---|');
const report = (name: string, bytes: number, ms: number, state: number) =>
  console.log(
    `| ${name} | ${ms.toFixed(2)} | ${(bytes / (ms * 1e-3) / 1e9).toFixed(0)} | ${(state / 1e9).toFixed(2)} GB | ` +
      `${(state / params).toFixed(3)} |`,
  );

{
  const owned: number[] = [];
  const before = gpu.memoryStats().allocated;
  const items: AdamWItem[] = weights.map((w) => ({
    ...w,
    m: buffer(owned, 'float32', w.count, 0.01),
    v: buffer(owned, 'float32', w.count, 1e-4),
  }));
  const state = gpu.memoryStats().allocated - before;
  report(
    'AdamW, float32 moments: adamwMany',
    28 * params,
    time(() => gpu.adamwMany(items, args)),
    state,
  );
  for (const h of owned) gpu.free(h);
}
function eightBit(name: string, tensors: typeof weights): void {
  const owned: number[] = [];
  const before = gpu.memoryStats().allocated;
  const items: AdamW8bitItem[] = tensors.map((w) => {
    const { codeWords, blocks } = adamw8bitSlotSizes(w.count);
    return {
      ...w,
      mCodes: buffer(owned, 'int32', codeWords, 0),
      vCodes: buffer(owned, 'int32', codeWords, 0),
      mAbsmax: buffer(owned, 'float32', blocks, 0),
      vAbsmax: buffer(owned, 'float32', blocks, 0),
    };
  });
  const state = gpu.memoryStats().allocated - before;
  const maps = adamw8bitMaps();
  report(
    name,
    (16 + 16 / 256) * params,
    time(() => gpu.adamw8bitMany(items, maps, args)),
    state,
  );
  for (const h of owned) gpu.free(h);
}
eightBit('AdamW, 8-bit moments: adamw8bitMany, normal gradients', weights);
eightBit('AdamW, 8-bit moments: adamw8bitMany, constant gradients (best case)', constantGrads);
for (const h of shared) gpu.free(h);
