// Matmul sweep on the CUDA engine (cuBLASLt): square sizes and the GEMMs of an andromeda-3b
// training step, in bfloat16 (tensor cores, float32 accumulation) and float32 (no TF32).
//   node dist/bench/gpu-matmul.js [--quick]
// Prints a Markdown table; PyTorch's own figures come from bench/gpu-torch-ceiling.py in the same run.
import { getEngine, type Dense, type MatmulArgs } from '../src/engine/index.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import { DTYPE_BYTES, encodeHost, type DType } from '../src/tensor/dtype.js';
import { Generator } from '../src/tensor/random.js';

const gpu = getEngine('cuda') as CudaEngine;
const quick = process.argv.includes('--quick');

/** A device buffer of `count` random normal values (a 1 Mi-element random block repeated at shifting offsets). */
function randomBuffer(dtype: DType, count: number, gen: Generator): Dense {
  const block = 1 << 20;
  const values = new Float64Array(block + 4099);
  for (let i = 0; i < values.length; i++) values[i] = gen.normal();
  const raw = encodeHost(dtype, values);
  const handle = gpu.alloc(count * DTYPE_BYTES[dtype]);
  const bytesPer = DTYPE_BYTES[dtype];
  for (let at = 0, shift = 0; at < count; at += block, shift = (shift + 1031) % 4099) {
    const n = Math.min(block, count - at);
    const view = new Uint8Array(raw.buffer, raw.byteOffset + shift * bytesPer, n * bytesPer);
    gpu.upload(handle, at * bytesPer, view);
  }
  return { handle, offset: 0, dtype };
}

interface Shape {
  label: string;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
}

function timeMatmul(dtype: DType, s: Shape, gen: Generator): { ms: number; tflops: number } {
  const a = randomBuffer(dtype, s.m * s.k, gen),
    b = randomBuffer(dtype, s.k * s.n, gen),
    c = randomBuffer(dtype, s.m * s.n, gen);
  const args: MatmulArgs = {
    a,
    b,
    c,
    m: s.m,
    n: s.n,
    k: s.k,
    transA: !!s.transA,
    transB: !!s.transB,
    lda: s.transA ? s.m : s.k,
    ldb: s.transB ? s.k : s.n,
    ldc: s.n,
    strideA: 0,
    strideB: 0,
    strideC: 0,
    batch: 1,
    alpha: 1,
    beta: 0,
  };
  const flops = 2 * s.m * s.n * s.k;
  for (let i = 0; i < 3; i++) gpu.matmul(args);
  gpu.synchronize();
  // Enough launches per sample for ~50 ms of work; the median of 7 samples.
  const once = (() => {
    const t = performance.now();
    gpu.matmul(args);
    gpu.synchronize();
    return performance.now() - t;
  })();
  const reps = Math.max(3, Math.min(200, Math.ceil(50 / Math.max(once, 1e-3))));
  const samples: number[] = [];
  for (let s2 = 0; s2 < 7; s2++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) gpu.matmul(args);
    gpu.synchronize();
    samples.push((performance.now() - t0) / reps);
  }
  samples.sort((x, y) => x - y);
  const ms = samples[3]!;
  for (const d of [a, b, c]) gpu.free(d.handle);
  return { ms, tflops: flops / (ms * 1e-3) / 1e12 };
}

const squares = quick ? [1024, 4096, 8192] : [1024, 2048, 4096, 8192, 16384];
// andromeda-3b: dim 2560, 24 heads × 128 (q 3072), one KV head (k, v 128 each), ff 4×2560, vocab 50432; 2,048 tokens.
const t = 2048,
  dim = 2560,
  qkv = 3072 + 2 * 128,
  ff = 4 * dim,
  vocab = 50432;
const modelShapes: Shape[] = [
  { label: 'qkv proj fwd (x·Wᵀ)', m: t, n: qkv, k: dim, transB: true },
  { label: 'out proj fwd', m: t, n: dim, k: 3072, transB: true },
  { label: 'ff up fwd', m: t, n: ff, k: dim, transB: true },
  { label: 'ff down fwd', m: t, n: dim, k: ff, transB: true },
  { label: 'ff up dX (g·W)', m: t, n: dim, k: ff },
  { label: 'ff up dW (gᵀ·x)', m: ff, n: dim, k: t, transA: true },
  { label: 'logits fwd', m: t, n: vocab, k: dim, transB: true },
  { label: 'logits dW', m: vocab, n: dim, k: t, transA: true },
];

const gen = new Generator(7);
console.log(`# ${gpu.description}; ${gpu.gemmLibrary()}\n`);
console.log('| dtype | shape (m × n × k) | what | ms | TFLOP/s |');
console.log('|---|---|---|---|---|');
for (const dtype of ['bfloat16', 'float32'] as DType[]) {
  const sizes = dtype === 'float32' ? squares.filter((s) => s <= 8192) : squares;
  for (const size of sizes) {
    const r = timeMatmul(dtype, { label: 'square', m: size, n: size, k: size }, gen);
    console.log(`| ${dtype} | ${size} × ${size} × ${size} | square | ${r.ms.toFixed(3)} | ${r.tflops.toFixed(1)} |`);
  }
  if (dtype === 'bfloat16') {
    for (const s of modelShapes) {
      const r = timeMatmul(dtype, s, gen);
      console.log(`| ${dtype} | ${s.m} × ${s.n} × ${s.k} | ${s.label} | ${r.ms.toFixed(3)} | ${r.tflops.toFixed(1)} |`);
    }
  }
}
const stats = gpu.memoryStats();
console.log(
  `\nallocator after the sweep: ${(stats.reserved / 2 ** 30).toFixed(2)} GiB reserved, ` +
    `peak ${(stats.peakAllocated / 2 ** 30).toFixed(2)} GiB`,
);
