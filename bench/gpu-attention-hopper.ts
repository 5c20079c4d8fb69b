// A/B of the attention forward kernels (the forwardKernel option, native/cuda/attention/heuristics.h): for each
// chosen kernel, first its agreement with the mma.sync kernel on mid-size problems, then forward
// timings at n tokens (default 32,768), batch 1: plain causal 24×128 (issue 5's bar: ≥ 0.8× cuDNN), causal +
// ALiBi 24×128 (bar ≥ 0.7×), plain non-causal 24×128 at n/4, plain causal 8×64.
//   node dist/bench/gpu-attention-hopper.js [n] [--kernel mma|hopper ...]
// Without --kernel every kernel runs in this process (a kernel that crashes the context then hides the rest:
// bench/gpu-attention-hopper.sh runs one process per kernel). TFLOP/s count causal work as half the square.
import { getEngine, type AttentionArgs, type Dense } from '../src/engine/index.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import type { CudaAttentionKernel } from '../src/engine/cuda-attention.js';
import { Generator } from '../src/tensor/random.js';
import { difference, medianMs, randomBuffer, readBuffer } from './gpu-buffers.js';

const ALL: readonly CudaAttentionKernel[] = ['mma', 'hopper'];
const gpu = getEngine('cuda') as CudaEngine;
const argv = process.argv.slice(2);
const N = Number(argv.find((a) => /^\d+$/.test(a)) ?? 32768);
const kernels = argv.flatMap((a, i) => (a === '--kernel' && argv[i + 1] ? [argv[i + 1]!] : []));
for (const k of kernels)
  if (!ALL.includes(k as CudaAttentionKernel)) throw new Error(`--kernel ${k}: expected ${ALL.join(' or ')}`);
const gen = new Generator(7);

interface Shape {
  label: string;
  n: number;
  heads: number;
  kvHeads: number;
  dim: number;
  causal: boolean;
  alibi: boolean;
}

function args(s: Shape): AttentionArgs {
  return {
    batch: 1,
    heads: s.heads,
    kvHeads: s.kvHeads,
    queryLen: s.n,
    keyLen: s.n,
    headDim: s.dim,
    scale: 1 / Math.sqrt(s.dim),
    causal: s.causal,
    queryOffset: 0,
    alibiSlopes: s.alibi ? Float32Array.from({ length: s.heads }, (_, h) => 2 ** ((-8 * (h + 1)) / s.heads)) : null,
    rotaryDim: 0,
    rotaryInvFreq: null,
    xposScaleBase: 0,
    keyScale: null,
    queryPositions: null,
    keyPositions: null,
    querySegments: null,
    keySegments: null,
  };
}

interface Buffers {
  q: Dense;
  k: Dense;
  v: Dense;
  out: Dense;
  lse: Dense;
}
function buffers(s: Shape): Buffers {
  return {
    q: randomBuffer(gpu, gen, 'bfloat16', s.heads * s.n * s.dim),
    k: randomBuffer(gpu, gen, 'bfloat16', s.kvHeads * s.n * s.dim),
    v: randomBuffer(gpu, gen, 'bfloat16', s.kvHeads * s.n * s.dim),
    out: randomBuffer(gpu, gen, 'bfloat16', s.heads * s.n * s.dim),
    lse: randomBuffer(gpu, gen, 'float32', s.heads * s.n),
  };
}
function free(b: Buffers): void {
  for (const d of Object.values(b)) gpu.free(d.handle);
}

function run(kernel: CudaAttentionKernel, s: Shape, b: Buffers): void {
  gpu.attentionForward(b.q, b.k, b.v, b.out, b.lse, args(s), { path: 'tiled', forwardKernel: kernel });
}

const checks: Shape[] = [
  { label: 'causal 8×128 n 3000', n: 3000, heads: 8, kvHeads: 8, dim: 128, causal: true, alibi: false },
  { label: 'causal ALiBi GQA 8/2×128 n 3000', n: 3000, heads: 8, kvHeads: 2, dim: 128, causal: true, alibi: true },
  { label: 'non-causal 8×64 n 2500', n: 2500, heads: 8, kvHeads: 8, dim: 64, causal: false, alibi: false },
  { label: 'causal ALiBi MQA 8/1×64 n 3000', n: 3000, heads: 8, kvHeads: 1, dim: 64, causal: true, alibi: true },
];
const timed: Shape[] = [
  { label: 'plain causal 24×128', n: N, heads: 24, kvHeads: 24, dim: 128, causal: true, alibi: false },
  { label: 'ALiBi causal 24×128', n: N, heads: 24, kvHeads: 24, dim: 128, causal: true, alibi: true },
  { label: 'plain non-causal 24×128', n: N / 4, heads: 24, kvHeads: 24, dim: 128, causal: false, alibi: false },
  { label: 'plain causal 8×64', n: N, heads: 8, kvHeads: 8, dim: 64, causal: true, alibi: false },
];

console.log(`# attention forward kernels, ${gpu.description}`);
const chosen = kernels.length ? (kernels as CudaAttentionKernel[]) : ALL;
console.log('\n| kernel | check (vs mma) | out max rel diff | lse max rel diff |\n|---|---|---|---|');
for (const kernel of chosen.filter((k) => k !== 'mma')) {
  for (const s of checks) {
    const b = buffers(s);
    try {
      run('mma', s, b);
      const refOut = readBuffer(gpu, b.out, s.heads * s.n * s.dim),
        refLse = readBuffer(gpu, b.lse, s.heads * s.n);
      run(kernel, s, b);
      const out = readBuffer(gpu, b.out, s.heads * s.n * s.dim),
        lse = readBuffer(gpu, b.lse, s.heads * s.n);
      console.log(
        `| ${kernel} | ${s.label} | ${difference(out, refOut).toExponential(1)} | ` +
          `${difference(lse, refLse).toExponential(1)} |`,
      );
    } catch (e) {
      console.log(`| ${kernel} | ${s.label} | error: ${(e as Error).message} | |`);
    } finally {
      free(b);
    }
  }
}

console.log('\n| kernel | forward | n | ms | TFLOP/s |\n|---|---|---|---|---|');
for (const s of timed) {
  const b = buffers(s);
  for (const kernel of chosen) {
    try {
      const ms = medianMs(gpu, () => run(kernel, s, b));
      const flops = (4 * s.n * s.n * s.dim * s.heads) / (s.causal ? 2 : 1);
      console.log(`| ${kernel} | ${s.label} | ${s.n} | ${ms.toFixed(2)} | ${(flops / ms / 1e9).toFixed(0)} |`);
    } catch (e) {
      console.log(`| ${kernel} | ${s.label} | ${s.n} | error: ${(e as Error).message} | |`);
    }
  }
  free(b);
}
