// Fused attention on the CUDA engine (native/cuda/attention) against PyTorch SDPA's cuDNN engine measured
// in the same run (bench/gpu-attention-sdpa.py): causal forward and backward at 32k tokens, plain and with
// Andromeda's features (ALiBi on half the heads, rotary + xPos, key scale with one KV head), and the
// split-KV decode kernel against a long cache.
//   node dist/bench/gpu-attention.js [n] [--no-torch] [--forward-once]
// --forward-once: one plain and one featured forward launch and nothing else (for a profiler);
// --decode-once: one decode step of andromeda-3b attention against 32,768 cached keys.
// --transforms: andromeda-3b attention (MQA, key scale, rotary + xPos, ALiBi on 12 of 24 heads) at 2,048
// and 32,768 tokens with rotary / xPos / key scale applied in the kernels' tiles and by the pre-pass (the
// transform option; on Hopper the split key scale: 'split'), beside the plain MQA kernel of the same shape, with
// each call's scratch (peak memory above the live buffers); nothing else.
// TFLOP/s count causal work as half the square: forward 4·n²·d·h / 2, backward 2.5× that (as FlashAttention
// and PyTorch's benchmarks do), so the ratios compare like with like.
import { spawnSync } from 'node:child_process';
import { getEngine, type AttentionArgs, type Dense } from '../src/engine/index.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import type { CudaAttentionPath, CudaAttentionTransform } from '../src/engine/cuda-attention.js';
import { Generator } from '../src/tensor/random.js';
import { medianMs, randomBuffer } from './gpu-buffers.js';

const gpu = getEngine('cuda') as CudaEngine;
const argv = process.argv.slice(2);
const N = Number(argv.find((a) => /^\d+$/.test(a)) ?? 32768);
const withTorch = !argv.includes('--no-torch');
const gen = new Generator(5);

interface Setup {
  label: string;
  heads: number;
  kvHeads: number;
  dim: number;
  alibi: boolean;
  xpos: boolean;
  keyScale: boolean;
}

function argsFor(s: Setup, n: number, qLen: number, extra: { keyScale: Dense | null }): AttentionArgs {
  const r = s.xpos ? Math.max(s.dim / 2, 32) : 0;
  return {
    batch: 1,
    heads: s.heads,
    kvHeads: s.kvHeads,
    queryLen: qLen,
    keyLen: n,
    headDim: s.dim,
    scale: 1 / Math.sqrt(s.dim),
    causal: true,
    queryOffset: n - qLen,
    alibiSlopes: s.alibi
      ? Float32Array.from({ length: s.heads }, (_, h) => (h < s.heads / 2 ? 2 ** ((-8 * (h + 1)) / (s.heads / 2)) : 0))
      : null,
    rotaryDim: r,
    rotaryInvFreq: r ? Float32Array.from({ length: r / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / r)) : null,
    xposScaleBase: s.xpos ? 512 : 0,
    keyScale: extra.keyScale,
    queryPositions: null,
    keyPositions: null,
    querySegments: null,
    keySegments: null,
  };
}

const rows: string[] = [];
const ours = new Map<string, { fwd: number; bwd: number }>();

/** Bytes the engine holds above the live buffers while fn runs (the attention's scratch). */
function scratchBytes(fn: () => void): number {
  gpu.synchronize();
  const base = gpu.memoryStats().allocated;
  gpu.resetPeakMemory();
  fn();
  gpu.synchronize();
  return gpu.memoryStats().peakAllocated - base;
}

/** Median forward and backward ms of one causal prefill of n tokens, the transform path it took and its scratch. */
function timePrefill(
  s: Setup,
  n: number,
  transform: CudaAttentionTransform = 'auto',
): { fwd: number; bwd: number; plan: string; fwdScratch: number; bwdScratch: number } {
  const q = randomBuffer(gpu, gen, 'bfloat16', s.heads * n * s.dim),
    k = randomBuffer(gpu, gen, 'bfloat16', s.kvHeads * n * s.dim),
    v = randomBuffer(gpu, gen, 'bfloat16', s.kvHeads * n * s.dim);
  const ks = s.keyScale ? randomBuffer(gpu, gen, 'float32', s.heads * s.dim, 0.2, 1) : null;
  const out = randomBuffer(gpu, gen, 'bfloat16', s.heads * n * s.dim),
    lse = randomBuffer(gpu, gen, 'float32', s.heads * n);
  const go = randomBuffer(gpu, gen, 'bfloat16', s.heads * n * s.dim);
  const dq = randomBuffer(gpu, gen, 'bfloat16', s.heads * n * s.dim),
    dk = randomBuffer(gpu, gen, 'bfloat16', s.kvHeads * n * s.dim),
    dv = randomBuffer(gpu, gen, 'bfloat16', s.kvHeads * n * s.dim);
  const dks = ks ? randomBuffer(gpu, gen, 'float32', s.heads * s.dim) : null;
  const args = argsFor(s, n, n, { keyScale: ks });
  const forward = { path: 'tiled', transform } as const,
    backward = { transform };
  const fwdScratch = scratchBytes(() => gpu.attentionForward(q, k, v, out, lse, args, forward));
  const bwdScratch = scratchBytes(() => gpu.attentionBackward(q, k, v, out, lse, go, dq, dk, dv, dks, args, backward));
  const fwd = medianMs(gpu, () => gpu.attentionForward(q, k, v, out, lse, args, forward), 5, 20);
  const bwd = medianMs(gpu, () => gpu.attentionBackward(q, k, v, out, lse, go, dq, dk, dv, dks, args, backward), 5, 20);
  const plan = gpu.attentionPlan(q, lse, args, backward);
  for (const d of [q, k, v, out, lse, go, dq, dk, dv, ks, dks]) if (d) gpu.free(d.handle);
  return { fwd, bwd, plan, fwdScratch, bwdScratch };
}

function benchPrefill(s: Setup, n: number): void {
  const { fwd, bwd } = timePrefill(s, n);
  const flops = (4 * n * n * s.dim * s.heads) / 2;
  ours.set(s.label, { fwd, bwd });
  rows.push(
    `| ${s.label} | ${n} | ${fwd.toFixed(2)} | ${(flops / fwd / 1e9).toFixed(0)} | ${bwd.toFixed(2)} | ` +
      `${((2.5 * flops) / bwd / 1e9).toFixed(0)} |`,
  );
}

function benchDecode(s: Setup, n: number, qLen: number, path: CudaAttentionPath): string {
  const q = randomBuffer(gpu, gen, 'bfloat16', s.heads * qLen * s.dim),
    k = randomBuffer(gpu, gen, 'bfloat16', s.kvHeads * n * s.dim),
    v = randomBuffer(gpu, gen, 'bfloat16', s.kvHeads * n * s.dim);
  const ks = s.keyScale ? randomBuffer(gpu, gen, 'float32', s.heads * s.dim, 0.2, 1) : null;
  const out = randomBuffer(gpu, gen, 'bfloat16', s.heads * qLen * s.dim),
    lse = randomBuffer(gpu, gen, 'float32', s.heads * qLen);
  const args = argsFor(s, n, qLen, { keyScale: ks });
  const ms = medianMs(gpu, () => gpu.attentionForward(q, k, v, out, lse, args, { path }), 7, 20);
  const bytes = 2 * s.kvHeads * n * s.dim * 2;
  for (const d of [q, k, v, out, lse, ks]) if (d) gpu.free(d.handle);
  return (
    `| ${s.label} | ${path} | ${qLen} | ${n} | ${(ms * 1e3).toFixed(0)} | ` +
    `${(bytes / (ms * 1e-3) / 1e9).toFixed(0)} |`
  );
}

const plain: Setup = {
  label: 'plain causal 24×128',
  heads: 24,
  kvHeads: 24,
  dim: 128,
  alibi: false,
  xpos: false,
  keyScale: false,
};
const featured: Setup = {
  label: 'ALiBi (12 of 24 heads) + rotary + xPos, 24×128',
  heads: 24,
  kvHeads: 24,
  dim: 128,
  alibi: true,
  xpos: true,
  keyScale: false,
};
const andromeda: Setup = {
  label: 'andromeda-3b attention: MQA + key scale + ALiBi + xPos',
  heads: 24,
  kvHeads: 1,
  dim: 128,
  alibi: true,
  xpos: true,
  keyScale: true,
};
const small: Setup = {
  label: 'plain causal 8×64',
  heads: 8,
  kvHeads: 8,
  dim: 64,
  alibi: false,
  xpos: false,
  keyScale: false,
};
const orca: Setup = {
  label: 'orca attention: MQA 8×64 + ALiBi + xPos',
  heads: 8,
  kvHeads: 1,
  dim: 64,
  alibi: true,
  xpos: true,
  keyScale: false,
};

if (argv.includes('--forward-once')) {
  for (const s of [plain, featured]) {
    const q = randomBuffer(gpu, gen, 'bfloat16', s.heads * N * s.dim),
      k = randomBuffer(gpu, gen, 'bfloat16', s.kvHeads * N * s.dim),
      v = randomBuffer(gpu, gen, 'bfloat16', s.kvHeads * N * s.dim);
    const out = randomBuffer(gpu, gen, 'bfloat16', s.heads * N * s.dim),
      lse = randomBuffer(gpu, gen, 'float32', s.heads * N);
    gpu.attentionForward(q, k, v, out, lse, argsFor(s, N, N, { keyScale: null }), { path: 'tiled' });
    gpu.synchronize();
  }
  process.exit(0);
}

if (argv.includes('--transforms')) {
  const plainMqa: Setup = {
    label: 'plain causal MQA 24×128 (no transform)',
    heads: 24,
    kvHeads: 1,
    dim: 128,
    alibi: false,
    xpos: false,
    keyScale: false,
  };
  console.log(`# andromeda-3b attention: transform in the kernels vs the pre-pass, ${gpu.description}`);
  console.log(
    '\n| attention | n | transform | path taken | forward ms | forward TFLOP/s | backward ms | backward TFLOP/s | ' +
      'scratch MiB forward / backward |\n|---|---|---|---|---|---|---|---|---|',
  );
  for (const n of [2048, 32768]) {
    const flops = (4 * n * n * 128 * 24) / 2;
    const runs: [Setup, CudaAttentionTransform][] = [
      [plainMqa, 'auto'],
      [andromeda, 'kernel'],
      [andromeda, 'prepass'],
    ];
    for (const [s, mode] of runs) {
      const r = timePrefill(s, n, mode);
      const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
      console.log(
        `| ${s.label} | ${n} | ${mode} | ${r.plan} | ${r.fwd.toFixed(3)} | ${(flops / r.fwd / 1e9).toFixed(0)} | ` +
          `${r.bwd.toFixed(3)} | ${((2.5 * flops) / r.bwd / 1e9).toFixed(0)} | ${mib(r.fwdScratch)} / ` +
          `${mib(r.bwdScratch)} |`,
      );
    }
  }
  process.exit(0);
}

if (argv.includes('--decode-once')) {
  const s = andromeda,
    n = 32768;
  const q = randomBuffer(gpu, gen, 'bfloat16', s.heads * s.dim),
    k = randomBuffer(gpu, gen, 'bfloat16', n * s.dim),
    v = randomBuffer(gpu, gen, 'bfloat16', n * s.dim);
  const ks = randomBuffer(gpu, gen, 'float32', s.heads * s.dim, 0.2, 1);
  const out = randomBuffer(gpu, gen, 'bfloat16', s.heads * s.dim),
    lse = randomBuffer(gpu, gen, 'float32', s.heads);
  for (let i = 0; i < 2; i++)
    gpu.attentionForward(q, k, v, out, lse, argsFor(s, n, 1, { keyScale: ks }), { path: 'decode' });
  gpu.synchronize();
  process.exit(0);
}

console.log(`# fused attention, ${gpu.description}`);
for (const s of [plain, featured, andromeda, small, orca]) benchPrefill(s, N);
console.log(
  '\n| attention | n | forward ms | forward TFLOP/s | backward ms | backward TFLOP/s |\n|---|---|---|---|---|---|',
);
for (const r of rows) console.log(r);

console.log('\n| decode | kernel | queries | keys | µs | K+V GB/s |\n|---|---|---|---|---|---|');
for (const n of [32768, 131072]) {
  console.log(benchDecode(andromeda, n, 1, 'decode'));
  console.log(benchDecode(andromeda, n, 1, 'tiled'));
}

if (withTorch) {
  const res = spawnSync('python3', ['bench/gpu-attention-sdpa.py', String(N), '24', '128', String(N), '8', '64'], {
    encoding: 'utf8',
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  if (res.status !== 0) console.log(`\nPyTorch SDPA failed: ${res.stderr.slice(-2000)}`);
  const lines = res.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, number | string>);
  const info = lines.find((l) => 'torch' in l);
  console.log(`\n## PyTorch SDPA in the same run (torch ${info?.torch}, ${info?.device})`);
  console.log(
    '| engine | shape | forward ms | forward TFLOP/s | backward ms | backward TFLOP/s | ours / it, forward (plain, ' +
      'featured) | backward (plain, featured) |\n|---|---|---|---|---|---|---|---|',
  );
  for (const l of lines.filter((x) => 'engine' in x)) {
    if ('error' in l) {
      console.log(`| ${l.backend} | ${l.heads}×${l.dim} | ${l.error} |`);
      continue;
    }
    const flops = (4 * N * N * Number(l.dim) * Number(l.heads)) / 2;
    const fwd = Number(l.fwd_ms),
      bwd = Number(l.bwd_ms);
    const mine =
      Number(l.heads) === 24
        ? [ours.get(plain.label)!, ours.get(featured.label)!]
        : [ours.get(small.label)!, ours.get(orca.label)!];
    const ratio = (a: number, b: number): string => (b / a).toFixed(2);
    console.log(
      `| ${l.backend} | ${l.heads}×${l.dim} | ${fwd.toFixed(2)} | ${(flops / fwd / 1e9).toFixed(0)} | ` +
        `${bwd.toFixed(2)} | ${((2.5 * flops) / bwd / 1e9).toFixed(0)} | ` +
        `${ratio(mine[0]!.fwd, fwd)}, ${ratio(mine[1]!.fwd, fwd)} | ${ratio(mine[0]!.bwd, bwd)}, ` +
        `${ratio(mine[1]!.bwd, bwd)} |`,
    );
  }
}
