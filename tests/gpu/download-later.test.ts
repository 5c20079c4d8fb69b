// Engine.downloadLater on CUDA (native/cuda/pending_reads.cc): the read sits on the stream behind the work enqueued
// before it and ahead of the work enqueued after it; a ticket is spent by its wait; the engine keeps 16 reads in
// flight and refuses a 17th, a read past a buffer's end, one over 64 MiB and one inside a graph capture, each with
// an error that says so, and keeps working after every refusal.
import assert from 'node:assert/strict';
import type { CudaEngine } from '../../src/engine/cuda.js';
import { gpu, gpuTest } from './harness.js';

const engine = (): CudaEngine => gpu() as CudaEngine;

gpuTest('downloadLater: the bytes of its place on the stream, not of the work enqueued after it', () => {
  const e = engine();
  const n = 1 << 20;
  const h = e.alloc(n * 4);
  try {
    e.fill({ handle: h, offset: 0, dtype: 'float32' }, n, 1.5);
    const read = e.downloadLater(h, 0, n * 4);
    // Enqueued after the read: a fill of the same buffer, and many more to keep the device busy.
    for (let i = 0; i < 50; i++) e.fill({ handle: h, offset: 0, dtype: 'float32' }, n, 2 + i);
    const early = new Float32Array(read.wait());
    assert.equal(early.length, n);
    assert.ok(
      early.every((v) => v === 1.5),
      'the read saw the buffer as the work before it left it',
    );
    assert.equal(new Float32Array(e.download(h, (n - 1) * 4, 4))[0], 51, 'the later fills ran after it');
    assert.throws(() => read.wait(), /read \d+ is not pending \(never started, or already collected\)/);
  } finally {
    e.free(h);
  }
});

gpuTest('downloadLater: 16 reads in flight, then a clear refusal; bad ranges and captures are refused', () => {
  const e = engine();
  const h = e.alloc(64);
  try {
    e.upload(
      h,
      0,
      Int32Array.from({ length: 16 }, (_, i) => i * 3),
    );
    const reads = Array.from({ length: 16 }, (_, i) => e.downloadLater(h, i * 4, 4));
    assert.throws(() => e.downloadLater(h, 0, 4), /16 reads are pending already \(collect them with wait\(\) first\)/);
    reads.forEach((r, i) => assert.equal(new Int32Array(r.wait())[0], i * 3));
    assert.equal(new Int32Array(e.downloadLater(h, 60, 4).wait())[0], 45, 'slots come back once collected');
    assert.throws(() => e.downloadLater(h, 60, 8), { name: 'RangeError', message: /downloadStart: bytes \[60, 68\)/ });
    assert.throws(() => e.downloadLater(h, 0, 2 ** 27), /at most 67108864/);
    assert.throws(
      () => e.captureGraph(() => void e.downloadLater(h, 0, 4)),
      /downloadLater \(a device→host read\) inside captureGraph/,
    );
    assert.equal(new Int32Array(e.downloadLater(h, 4, 4).wait())[0], 3, 'the engine works on');
  } finally {
    e.free(h);
  }
});
