// A/B of the attention backward kernels (the backwardKernel option, native/cuda/attention/heuristics.h):
// for each chosen kernel, first its agreement with the mma.sync kernels on mid-size problems (dq, dk, dv), then
// backward timings at n tokens (default 32,768), batch 1: plain causal 24×128 (issue 5's bar: ≥ 0.7× cuDNN's
// backward), ALiBi causal 24×128, and andromeda-3b's training shape (2,048 tokens, 24 heads × 128, one KV head)
// plain and with all of its features (rotary 64 + xPos, key scale, ALiBi on 12 heads: the pre-pass path).
//   node dist/bench/gpu-attention-hopper-backward.js [n] [--kernel mma|hopper ...] [--once]
// --once: one forward and one backward of plain causal 24×128 at n per kernel, nothing printed (for Nsight Compute);
// --once andromeda: the same for andromeda-3b's training shape with all of its features (what a 3B step runs).
// Without --kernel every kernel runs in this process (a kernel that crashes the context then hides the rest:
// bench/gpu-attention-hopper-backward.sh runs one process per kernel). The forward always runs on the automatic
// choice. TFLOP/s count the backward as 2.5× the forward's 4·n²·d·h (halved when causal).
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
const gen = new Generator(11);

interface Shape {
  label: string;
  n: number;
  heads: number;
  kvHeads: number;
  dim: number;
  causal: boolean;
  alibi: boolean;
  alibiHeads?: number;
  andromeda?: boolean; // rotary 64 + xPos 512 + key scale
}

interface Buffers {
  q: Dense;
  k: Dense;
  v: Dense;
  out: Dense;
  lse: Dense;
  gout: Dense;
  dq: Dense;
  dk: Dense;
  dv: Dense;
  ks: Dense | null;
  dks: Dense | null;
}

function buffers(s: Shape): Buffers {
  const nq = s.heads * s.n * s.dim,
    nk = s.kvHeads * s.n * s.dim;
  return {
    q: randomBuffer(gpu, gen, 'bfloat16', nq),
    k: randomBuffer(gpu, gen, 'bfloat16', nk),
    v: randomBuffer(gpu, gen, 'bfloat16', nk),
    out: randomBuffer(gpu, gen, 'bfloat16', nq),
    lse: randomBuffer(gpu, gen, 'float32', s.heads * s.n),
    gout: randomBuffer(gpu, gen, 'bfloat16', nq),
    dq: randomBuffer(gpu, gen, 'bfloat16', nq),
    dk: randomBuffer(gpu, gen, 'bfloat16', nk),
    dv: randomBuffer(gpu, gen, 'bfloat16', nk),
    ks: s.andromeda ? randomBuffer(gpu, gen, 'float32', s.heads * s.dim, 0.1) : null,
    dks: s.andromeda ? randomBuffer(gpu, gen, 'float32', s.heads * s.dim) : null,
  };
}
function free(b: Buffers): void {
  for (const d of Object.values(b)) if (d) gpu.free(d.handle);
}

function args(s: Shape, b: Buffers): AttentionArgs {
  const alibiHeads = s.alibiHeads ?? s.heads;
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
    alibiSlopes: s.alibi
      ? Float32Array.from({ length: s.heads }, (_, h) => (h < alibiHeads ? 2 ** ((-8 * (h + 1)) / alibiHeads) : 0))
      : null,
    rotaryDim: s.andromeda ? 64 : 0,
    rotaryInvFreq: s.andromeda ? Float32Array.from({ length: 32 }, (_, i) => 1 / 10000 ** ((2 * i) / 64)) : null,
    xposScaleBase: s.andromeda ? 512 : 0,
    keyScale: b.ks,
    queryPositions: null,
    keyPositions: null,
    querySegments: null,
    keySegments: null,
  };
}

/** The forward on the automatic choice: out and lse consistent with q, k, v (δ and P then behave as in training). */
function forward(s: Shape, b: Buffers): void {
  gpu.attentionForward(b.q, b.k, b.v, b.out, b.lse, args(s, b), { path: 'tiled' });
}

function backward(kernel: CudaAttentionKernel, s: Shape, b: Buffers): void {
  gpu.attentionBackward(b.q, b.k, b.v, b.out, b.lse, b.gout, b.dq, b.dk, b.dv, b.dks, args(s, b), {
    backwardKernel: kernel,
  });
}

const checks: Shape[] = [
  { label: 'causal 8×128 n 3000', n: 3000, heads: 8, kvHeads: 8, dim: 128, causal: true, alibi: false },
  { label: 'causal ALiBi GQA 8/2×128 n 3000', n: 3000, heads: 8, kvHeads: 2, dim: 128, causal: true, alibi: true },
  { label: 'non-causal 8×64 n 2500', n: 2500, heads: 8, kvHeads: 8, dim: 64, causal: false, alibi: false },
  { label: 'causal ALiBi MQA 8/1×64 n 3000', n: 3000, heads: 8, kvHeads: 1, dim: 64, causal: true, alibi: true },
  {
    label: 'andromeda-3b features 24/1×128 n 2048',
    n: 2048,
    heads: 24,
    kvHeads: 1,
    dim: 128,
    causal: true,
    alibi: true,
    alibiHeads: 12,
    andromeda: true,
  },
];
const timed: Shape[] = [
  { label: 'plain causal 24×128', n: N, heads: 24, kvHeads: 24, dim: 128, causal: true, alibi: false },
  { label: 'ALiBi causal 24×128', n: N, heads: 24, kvHeads: 24, dim: 128, causal: true, alibi: true },
  { label: 'plain causal MQA 24/1×128', n: 2048, heads: 24, kvHeads: 1, dim: 128, causal: true, alibi: false },
  {
    label: 'andromeda-3b (all features) 24/1×128',
    n: 2048,
    heads: 24,
    kvHeads: 1,
    dim: 128,
    causal: true,
    alibi: true,
    alibiHeads: 12,
    andromeda: true,
  },
  { label: 'plain causal 8×64', n: N, heads: 8, kvHeads: 8, dim: 64, causal: true, alibi: false },
];

const chosen = kernels.length ? (kernels as CudaAttentionKernel[]) : ALL;
if (argv.includes('--once')) {
  const s = argv[argv.indexOf('--once') + 1] === 'andromeda' ? timed.find((t) => t.andromeda)! : timed[0]!,
    b = buffers(s);
  forward(s, b);
  for (const kernel of chosen) backward(kernel, s, b);
  gpu.synchronize();
  free(b);
  process.exit(0);
}
console.log(`# attention backward kernels, ${gpu.description}`);
console.log(
  '\n| kernel | check (vs mma) | dq max rel diff | dk max rel diff | dv max rel diff |\n|---|---|---|---|---|',
);
for (const kernel of chosen.filter((k) => k !== 'mma')) {
  for (const s of checks) {
    const b = buffers(s);
    const nq = s.heads * s.n * s.dim,
      nk = s.kvHeads * s.n * s.dim;
    try {
      forward(s, b);
      backward('mma', s, b);
      const ref = [readBuffer(gpu, b.dq, nq), readBuffer(gpu, b.dk, nk), readBuffer(gpu, b.dv, nk)];
      backward(kernel, s, b);
      const got = [readBuffer(gpu, b.dq, nq), readBuffer(gpu, b.dk, nk), readBuffer(gpu, b.dv, nk)];
      console.log(
        `| ${kernel} | ${s.label} | ${got.map((g, i) => difference(g, ref[i]!).toExponential(1)).join(' | ')} |`,
      );
    } catch (e) {
      console.log(`| ${kernel} | ${s.label} | error: ${(e as Error).message} | | |`);
    } finally {
      free(b);
    }
  }
}

console.log('\n| kernel | backward | n | ms | TFLOP/s |\n|---|---|---|---|---|');
for (const s of timed) {
  const b = buffers(s);
  forward(s, b);
  for (const kernel of chosen) {
    try {
      const ms = medianMs(gpu, () => backward(kernel, s, b));
      const flops = (2.5 * 4 * s.n * s.n * s.dim * s.heads) / (s.causal ? 2 : 1);
      console.log(`| ${kernel} | ${s.label} | ${s.n} | ${ms.toFixed(2)} | ${(flops / ms / 1e9).toFixed(0)} |`);
    } catch (e) {
      console.log(`| ${kernel} | ${s.label} | ${s.n} | error: ${(e as Error).message} | |`);
    }
  }
  free(b);
}
