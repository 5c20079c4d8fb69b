// Engine.prefetchToCache on CUDA (native/cuda/prefetch.cu): a hint that must never fault nor change a value —
// regions at odd offsets and lengths (trimmed to 16-byte bounds, a bulk prefetch's unit), shorter than 16 bytes,
// ending at their allocation's last byte, larger than the L2 budget, more regions than one launch takes, eagerly
// and inside a CUDA graph; every buffer keeps its bits and the stream keeps working (the next download waits on
// the prefetch kernel, so a fault would surface there).
import assert from 'node:assert/strict';
import { Tensor, tidy } from '../../src/index.js';
import { narrow } from '../../src/ops/layout.js';
import { prefetchToCache } from '../../src/ops/prefetch.js';
import type { CudaEngine } from '../../src/engine/cuda.js';
import { gpu, gpuTest } from './harness.js';

const engine = (): CudaEngine => gpu() as CudaEngine;

function filled(count: number, dtype: 'bfloat16' | 'float32', seed: number): { tensor: Tensor; values: Float64Array } {
  const values = Float64Array.from({ length: count }, (_, i) => ((i * 2654435761 + seed) % 2001) - 1000);
  return { tensor: Tensor.fromArray(values, [count], dtype, 'cuda'), values };
}

gpuTest('prefetchToCache: odd, tiny, whole and oversized regions leave every value as it was', () => {
  const buffers = [
    filled(1, 'bfloat16', 1), // 2 bytes: nothing of it is 16-byte aligned on both ends
    filled(7, 'float32', 2), // 28 bytes
    filled(12_345, 'bfloat16', 3), // ends mid-chunk, at the allocation's last element
    filled(40 << 20, 'bfloat16', 4), // 80 MB: past any L2 budget
    filled(65_537, 'float32', 5),
    filled(1000, 'bfloat16', 6),
  ];
  tidy(() => {
    const views = buffers.map(({ tensor }) => (tensor.size > 8 ? narrow(tensor, 0, 3, tensor.size - 5) : tensor));
    prefetchToCache(views); // six regions: more than one launch takes; the rest are left out
    prefetchToCache(buffers.map((b) => b.tensor).reverse());
    prefetchToCache([]);
  });
  for (const [i, { tensor, values }] of buffers.entries())
    assert.deepEqual(Float64Array.from(tensor.toArray()), values, `buffer ${i} is unchanged`);
  for (const { tensor } of buffers) tensor.dispose();
});

gpuTest('prefetchToCache inside a CUDA graph: replays, and the values read after it are right', () => {
  const e = engine();
  const { tensor: weight, values } = filled(3 << 20, 'bfloat16', 7);
  const result: { out: Tensor | null } = { out: null };
  const graph = e.captureGraph(() => {
    prefetchToCache([weight]);
    result.out = weight.mul(2);
  });
  for (let r = 0; r < 3; r++) graph.replay();
  const got = result.out!.toArray();
  for (let i = 0; i < values.length; i += 997) assert.equal(got[i], 2 * values[i]!, `element ${i}`);
  result.out!.dispose();
  graph.dispose();
  weight.dispose();
});
