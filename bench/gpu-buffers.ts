// Device buffers and timing shared by the GPU kernel benches: random operands without a host pass per element,
// reading results back, the median time of a call, and the difference between two kernels' results.
import type { Engine, Dense } from '../src/engine/index.js';
import { DTYPE_BYTES, decodeHost, encodeHost, type DType } from '../src/tensor/dtype.js';
import type { Generator } from '../src/tensor/random.js';

/** `count` values offset + scale · N(0, 1): a random block of 1 Mi values repeated at shifting offsets. */
export function randomBuffer(gpu: Engine, gen: Generator, dtype: DType, count: number, scale = 1, offset = 0): Dense {
  const block = 1 << 20;
  const raw = encodeHost(
    dtype,
    Float64Array.from({ length: block + 4099 }, () => offset + scale * gen.normal()),
  );
  const bytesPer = DTYPE_BYTES[dtype];
  const handle = gpu.alloc(Math.max(16, count * bytesPer));
  for (let at = 0, shift = 0; at < count; at += block, shift = (shift + 1031) % 4099) {
    const n = Math.min(block, count - at);
    gpu.upload(handle, at * bytesPer, new Uint8Array(raw.buffer, raw.byteOffset + shift * bytesPer, n * bytesPer));
  }
  return { handle, offset: 0, dtype };
}

export function readBuffer(gpu: Engine, d: Dense, count: number): Float64Array {
  return Float64Array.from(decodeHost(d.dtype, gpu.download(d.handle, 0, count * DTYPE_BYTES[d.dtype]), count));
}

/** Median over `samples` of the mean time of fn, repeated to fill about `targetMs` per sample (after a warm-up). */
export function medianMs(gpu: Engine, fn: () => void, samples = 5, targetMs = 30): number {
  fn();
  gpu.synchronize();
  const once = (() => {
    const t = performance.now();
    fn();
    gpu.synchronize();
    return performance.now() - t;
  })();
  const reps = Math.max(1, Math.min(200, Math.ceil(targetMs / Math.max(once, 1e-3))));
  const times: number[] = [];
  for (let s = 0; s < samples; s++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    gpu.synchronize();
    times.push((performance.now() - t0) / reps);
  }
  times.sort((a, b) => a - b);
  return times[samples >> 1]!;
}

/** max |a − b| / max |b| over finite entries; ∞ where one side is non-finite and the other is not. */
export function difference(a: Float64Array, b: Float64Array): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < b.length; i++) {
    if (!Number.isFinite(a[i]!) || !Number.isFinite(b[i]!)) {
      if (a[i] !== b[i]) return Infinity;
      continue;
    }
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}
