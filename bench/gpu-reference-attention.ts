// The reference attention form at one andromeda-3b layer's shape (batch 1 × 2,048, 24 heads × 128, one
// KV head, key scale, rotary + xPos, ALiBi on 12 heads, bf16): its kernels alone (GB/s of the bytes
// they must move) and the whole op forward + backward, next to the fused kernels.
//   node dist/bench/gpu-reference-attention.js [seqLen]
import { getEngine } from '../src/engine/index.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import { tidy } from '../src/tensor/scope.js';
import { noGrad } from '../src/autograd/grad-mode.js';
import { randn } from '../src/ops/creation.js';
import { attention, type AttentionOptions } from '../src/ops/attention.js';
import { maskedSoftmax } from '../src/ops/masked-softmax.js';
import { rotary } from '../src/ops/rotary.js';
import { mul } from '../src/ops/elementwise.js';
import { sum } from '../src/ops/reduce.js';
import { alibiSlopes } from '../src/model/alibi.js';
import { plainInverseFrequencies } from '../src/model/rotary.js';
import { Generator } from '../src/tensor/random.js';

const n = Number(process.argv[2] ?? 2048);
const [H, d] = [24, 128];
const gpu = getEngine('cuda') as CudaEngine;

function time(fn: () => void): number {
  tidy(fn);
  gpu.synchronize();
  const samples: number[] = [];
  for (let s = 0; s < 5; s++) {
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) tidy(fn);
    gpu.synchronize();
    samples.push((performance.now() - t0) / 5);
  }
  return samples.sort((a, b) => a - b)[2]!;
}

console.log(`# ${gpu.description}; one andromeda-3b layer: 1 × ${n}, ${H} heads × ${d}, one KV head, bf16\n`);
console.log('| what | ms | GB/s |\n|---|---|---|');
const report = (what: string, ms: number, bytes?: number) =>
  console.log(`| ${what} | ${ms.toFixed(3)} | ${bytes ? (bytes / (ms * 1e-3) / 1e9).toFixed(0) : ''} |`);

const gen = new Generator(1);
const slopes = Float64Array.from([...alibiSlopes(12), ...new Array(H - 12).fill(0)]);
noGrad(() =>
  tidy(() => {
    const scores = randn([1, H, n, n], { generator: gen, dtype: 'bfloat16', device: 'cuda' });
    const mask = {
      causal: true,
      queryOffset: 0,
      alibiSlopes: slopes,
      queryPositions: null,
      keyPositions: null,
      querySegments: null,
      keySegments: null,
    };
    // Causal rows read about half the keys and write them all.
    report(
      'maskedSoftmax (causal, ALiBi) [1, 24, n, n]',
      time(() => {
        maskedSoftmax(scores, mask, { inPlace: true });
      }),
      1.5 * H * n * n * 2,
    );
    const grad = randn([1, H, n, n], { generator: gen, dtype: 'bfloat16', device: 'cuda' });
    // In place into the upstream gradient (the kernel reads each element before writing it).
    report(
      'softmaxGrad [1, 24, n, n]',
      time(() => gpu.softmaxGrad(scores.dense(), grad.dense(), grad.dense(), H * n, n, false)),
      3 * H * n * n * 2,
    );
    const q = randn([1, H, n, d], { generator: gen, dtype: 'bfloat16', device: 'cuda' });
    const spec = {
      rotaryDim: d,
      invFreq: plainInverseFrequencies(d, 10000),
      positions: null,
      positionOffset: 0,
      xpos: { scaleBase: 512, anchor: n / 2, sign: 1 as const, minDistance: -Infinity },
      multiplier: 10,
    };
    report(
      'rotary + xPos + scale [1, 24, n, 128]',
      time(() => {
        rotary(q, spec);
      }),
      2 * H * n * d * 2,
    );
  }),
);

const inputs = {
  q: randn([1, H, n, d], { generator: gen, dtype: 'bfloat16', device: 'cuda', requiresGrad: true }).keep(),
  k: randn([1, 1, n, d], { generator: gen, dtype: 'bfloat16', device: 'cuda', requiresGrad: true }).keep(),
  v: randn([1, 1, n, d], { generator: gen, dtype: 'bfloat16', device: 'cuda', requiresGrad: true }).keep(),
  ks: randn([H, d], {
    generator: gen,
    dtype: 'bfloat16',
    device: 'cuda',
    mean: 1,
    std: 0.1,
    requiresGrad: true,
  }).keep(),
};
for (const implementation of ['reference', 'fused'] as const) {
  const options: AttentionOptions = {
    scale: 10,
    keyScale: inputs.ks,
    rotary: { dim: d, invFreq: plainInverseFrequencies(d, 10000), xposScaleBase: 512 },
    alibiSlopes: slopes,
    implementation,
  };
  const ms = time(() => {
    sum(mul(attention(inputs.q, inputs.k, inputs.v, options), 1)).backward();
    for (const t of Object.values(inputs)) {
      t.grad?.dispose();
      t.grad = null;
    }
  });
  report(`attention ${implementation}, forward + backward`, ms);
}
const stats = gpu.memoryStats();
console.log(`\npeak ${(stats.peakAllocated / 2 ** 30).toFixed(2)} GiB allocated`);
