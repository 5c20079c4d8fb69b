// Bandwidth of the CUDA engine's memory-bound kernels against a device-to-device copy, in GB/s of
// bytes that must move (each input read once, each output written once).
//   node dist/bench/gpu-kernels.js
import { getEngine, type Dense } from '../src/engine/index.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import { DTYPE_BYTES, encodeHost, type DType } from '../src/tensor/dtype.js';
import { Generator } from '../src/tensor/random.js';

const gpu = getEngine('cuda') as CudaEngine;
const gen = new Generator(3);

function buffer(dtype: DType, count: number, fill?: number): Dense {
  const handle = gpu.alloc(count * DTYPE_BYTES[dtype]);
  const d: Dense = { handle, offset: 0, dtype };
  if (fill !== undefined) {
    gpu.fill(d, count, fill);
    return d;
  }
  const block = new Float64Array(1 << 20);
  for (let i = 0; i < block.length; i++) block[i] = gen.normal();
  const raw = encodeHost(dtype, block);
  for (let at = 0; at < count; at += block.length) {
    const n = Math.min(block.length, count - at);
    gpu.upload(handle, at * DTYPE_BYTES[dtype], new Uint8Array(raw.buffer, raw.byteOffset, n * DTYPE_BYTES[dtype]));
  }
  return d;
}

function time(fn: () => void): number {
  fn();
  gpu.synchronize();
  const samples: number[] = [];
  for (let s = 0; s < 5; s++) {
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) fn();
    gpu.synchronize();
    samples.push((performance.now() - t0) / 10);
  }
  return samples.sort((a, b) => a - b)[2]!;
}

const rows = 16384,
  cols = 4096,
  n = rows * cols;
console.log(`# ${gpu.description}; ${rows} × ${cols} elements\n`);
console.log('| kernel | dtype | ms | GB/s |\n|---|---|---|---|');
const report = (name: string, dtype: DType, bytes: number, ms: number) =>
  console.log(`| ${name} | ${dtype} | ${ms.toFixed(3)} | ${(bytes / (ms * 1e-3) / 1e9).toFixed(0)} |`);
for (const dtype of ['bfloat16', 'float32'] as DType[]) {
  const e = DTYPE_BYTES[dtype];
  const x = buffer(dtype, n),
    y = buffer(dtype, n),
    out = buffer(dtype, n, 0);
  const bias = buffer(dtype, cols),
    w = buffer(dtype, cols);
  const stats = buffer('float32', 2 * rows, 0);
  const contiguous = [cols, 1];
  report(
    'copy (same dtype, cudaMemcpyAsync)',
    dtype,
    2 * n * e,
    time(() => gpu.copy({ ...x, strides: contiguous }, { ...out, strides: contiguous }, [rows, cols])),
  );
  report(
    'copy transposed',
    dtype,
    2 * n * e,
    time(() => gpu.copy({ ...x, strides: [1, cols] }, { ...out, strides: contiguous }, [cols, rows])),
  );
  report(
    'add (dense)',
    dtype,
    3 * n * e,
    time(() => gpu.binary('add', { ...x, strides: contiguous }, { ...y, strides: contiguous }, out, [rows, cols])),
  );
  report(
    'add (bias broadcast)',
    dtype,
    2 * n * e,
    time(() => gpu.binary('add', { ...x, strides: contiguous }, { ...bias, strides: [0, 1] }, out, [rows, cols])),
  );
  report(
    'gelu',
    dtype,
    2 * n * e,
    time(() => gpu.unary('gelu', x, out, n, 0)),
  );
  report(
    'gelu grad',
    dtype,
    3 * n * e,
    time(() => gpu.unaryGrad('gelu', x, y, out, n)),
  );
  report(
    'softmax',
    dtype,
    2 * n * e,
    time(() => gpu.softmax(x, out, rows, cols, false)),
  );
  report(
    'layer norm',
    dtype,
    2 * n * e,
    time(() => gpu.norm(false, x, w, bias, out, stats, rows, cols, 1e-5)),
  );
  report(
    'reduce sum over rows',
    dtype,
    n * e,
    time(() => gpu.reduce('sum', x, out, 1, rows, cols)),
  );
  for (const d of [x, y, out, bias, w, stats]) gpu.free(d.handle);
}
{
  const p = buffer('float32', n),
    g = buffer('bfloat16', n),
    m = buffer('float32', n, 0),
    v = buffer('float32', n, 0);
  const args = {
    lr: 1e-4,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: 0.1,
    biasCorrection1: 0.1,
    biasCorrection2: 0.05,
    gradScale: 1,
  };
  report(
    'adamw (fp32 master + m + v, bf16 grad)',
    'float32',
    n * (4 * 6 + 2),
    time(() => gpu.adamw(p, g, m, v, n, args)),
  );
  const vocab = 50432,
    r = 2048;
  const logits = buffer('bfloat16', r * vocab),
    targets = buffer('int32', r, 7),
    losses = buffer('float32', r, 0),
    lse = buffer('float32', r, 0);
  report(
    'cross-entropy fwd (2048 × 50432)',
    'bfloat16',
    r * vocab * 2,
    time(() => gpu.crossEntropy(logits, targets, losses, lse, r, vocab, -100)),
  );
  report(
    'cross-entropy grad (2048 × 50432)',
    'bfloat16',
    r * vocab * 4,
    time(() => gpu.crossEntropyGrad(logits, targets, lse, losses, logits, r, vocab, -100)),
  );
}
