// The CUDA engine's caching allocator: reuse without new driver allocations, statistics, and
// out-of-memory reported as a JavaScript error that names the request and the pool state.
import assert from 'node:assert/strict';
import { Tensor, tidy } from '../../src/index.js';
import type { CudaEngine } from '../../src/engine/cuda.js';
import { gpu, gpuTest } from './harness.js';

const engine = (): CudaEngine => gpu() as CudaEngine;

gpuTest('allocator: freed blocks are reused, small and large', () => {
  const e = engine();
  for (const bytes of [1, 1000, 65536, 3 << 20, 100 << 20]) {
    // Handles carry a generation (a freed handle never names a new block), so reuse shows in the pool:
    // the second allocation takes the cached block instead of reserving more from the driver.
    const a = e.alloc(bytes);
    e.free(a);
    const reserved = e.memoryStats().reserved;
    const b = e.alloc(bytes);
    assert.notEqual(b, a, 'a freed handle is never handed out again');
    assert.equal(e.memoryStats().reserved, reserved, `a freed block of ${bytes} bytes is handed out again`);
    e.free(b);
  }
});

gpuTest('allocator: a steady workload stops reserving memory after its first pass', () => {
  const e = engine();
  const pass = () => {
    const held: number[] = [];
    for (let i = 0; i < 200; i++) held.push(e.alloc(512 + ((i * 7919) % 5000) * 1024));
    for (const h of held) e.free(h);
  };
  pass();
  const reserved = e.memoryStats().reserved;
  for (let i = 0; i < 5; i++) pass();
  assert.equal(e.memoryStats().reserved, reserved, 'no new driver allocations once the cache holds the working set');
});

gpuTest('memoryStats: current, peak and reserved follow allocations; tensors free deterministically', () => {
  const e = engine();
  const before = e.memoryStats();
  e.resetPeakMemory();
  const h = e.alloc(10 << 20);
  const during = e.memoryStats();
  assert.equal(during.allocated - before.allocated, 10 << 20);
  assert.ok(during.peakAllocated >= during.allocated);
  assert.ok(during.reserved >= during.allocated);
  e.free(h);
  const after = e.memoryStats();
  assert.equal(after.allocated, before.allocated);
  assert.equal(after.peakAllocated, during.allocated, 'peak remembers the high-water mark');
  assert.ok(after.deviceTotal > 0 && after.deviceFree > 0);

  const base = e.memoryStats().allocated;
  tidy(() => {
    const t = Tensor.fromArray(new Float32Array(1 << 20).fill(1), [1024, 1024], 'float32', 'cuda');
    assert.equal(e.memoryStats().allocated - base, 4 << 20);
    assert.equal(t.sum().item(), 1 << 20);
  });
  assert.equal(e.memoryStats().allocated, base, 'tidy returned every block');
});

gpuTest('out of memory: a RangeError naming the request size and pool state; the engine keeps working', () => {
  const e = engine();
  const live = e.alloc(1 << 20);
  const stats = e.memoryStats();
  e.setMemoryLimit(stats.reserved + (64 << 20));
  try {
    assert.throws(
      () => e.alloc(1 << 30),
      (err: Error) => {
        assert.ok(err instanceof RangeError, `expected a RangeError, got ${err.constructor.name}`);
        assert.match(err.message, /out of memory: cannot allocate 1073741824 bytes/);
        assert.match(err.message, /pool state: .* GiB held by \d+ live tensors' blocks, .* GiB reserved/);
        console.log(`# ${err.message}`);
        return true;
      },
    );
  } finally {
    e.setMemoryLimit(0);
  }
  // A request the device itself cannot satisfy (128 TiB, under the 2^48-byte argument cap) takes the same path.
  assert.throws(() => e.alloc(2 ** 47), /out of memory: cannot allocate 140737488355328 bytes/);
  const data = new Float32Array([1, 2, 3, 4]);
  e.upload(live, 0, data);
  assert.deepEqual(new Float32Array(e.download(live, 0, 16)), data);
  e.free(live);
  assert.throws(() => e.free(live), /handle names a freed buffer/);
});
