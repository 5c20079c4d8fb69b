// The native boundary refuses what would read or write outside a buffer, with a JavaScript error naming
// the argument: the reported reproductions (download past the end, upload past the end, numbers taken as
// pointers, alloc(-1)), stale handles, and ids / targets the kernels read through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEngine } from '../../src/index.js';
import { requireAddon } from '../../src/engine/native-engine.js';
import type { Dense, DType } from '../../src/index.js';

const cpu = getEngine('cpu');
const dense = (handle: number, dtype: DType = 'float32', offset = 0): Dense => ({ handle, offset, dtype });

function withBuffer(bytes: number, body: (h: number) => void): void {
  const h = cpu.alloc(bytes);
  try {
    body(h);
  } finally {
    cpu.free(h);
  }
}

test('download past the end of a buffer is a RangeError, not a crash', () => {
  withBuffer(16, (h) => {
    assert.throws(() => cpu.download(h, 0, 1 << 30), {
      name: 'RangeError',
      message: /download: bytes \[0, 1073741824\) are outside the buffer's 16 bytes/,
    });
    assert.throws(() => cpu.download(h, 12, 8), RangeError);
    assert.throws(() => cpu.download(h, -4, 4), RangeError);
    assert.equal(cpu.download(h, 12, 4).byteLength, 4);
  });
});

test('downloadLater reads what download reads, once, and refuses the same bad ranges', () => {
  withBuffer(16, (h) => {
    cpu.upload(h, 0, new Float32Array([1, 2, 3, 4]));
    const read = cpu.downloadLater(h, 4, 8);
    // The CPU engine reads at once: later writes do not reach a pending read.
    cpu.upload(h, 0, new Float32Array([5, 6, 7, 8]));
    assert.deepEqual(Array.from(new Float32Array(read.wait())), [2, 3]);
    assert.throws(() => read.wait(), /collected already/);
    assert.throws(() => cpu.downloadLater(h, 12, 8), { name: 'RangeError', message: /download: bytes \[12, 20\)/ });
    assert.throws(() => cpu.downloadLater(h, -4, 4), RangeError);
    assert.equal(cpu.downloadLater(h, 16, 0).wait().byteLength, 0);
  });
});

test('upload past the end of a buffer is refused and writes nothing', () => {
  const before = cpu.alloc(16),
    h = cpu.alloc(16),
    after = cpu.alloc(16);
  try {
    for (const b of [before, h, after]) cpu.upload(b, 0, new Float32Array([1, 2, 3, 4]));
    assert.throws(() => cpu.upload(h, 8, new Float32Array([9, 9, 9])), {
      name: 'RangeError',
      message: /upload: bytes \[8, 20\)/,
    });
    assert.throws(() => cpu.upload(h, 2 ** 53, new Float32Array(1)), RangeError);
    for (const b of [before, h, after])
      assert.deepEqual(Array.from(new Float32Array(cpu.download(b, 0, 16))), [1, 2, 3, 4]);
  } finally {
    for (const b of [before, h, after]) cpu.free(b);
  }
});

test('alloc refuses negative, fractional, NaN and absurd sizes with a RangeError', () => {
  for (const bytes of [-1, 1.5, NaN, Infinity, 2 ** 60, 2 ** 53 + 2]) {
    assert.throws(() => cpu.alloc(bytes), { name: 'RangeError', message: /alloc: bytes must be/ }, `alloc(${bytes})`);
  }
  assert.throws(() => cpu.alloc('8' as unknown as number), TypeError);
  withBuffer(0, (h) => assert.equal(cpu.download(h, 0, 0).byteLength, 0));
});

test('a number that is not a live handle (an address, a freed handle, garbage) reaches no kernel', () => {
  const addon = requireAddon<Record<string, (...args: unknown[]) => unknown>>('andromeda_cpu.node').load();
  withBuffer(64, (h) => {
    cpu.upload(h, 0, new Float32Array(16).fill(1));
    const stale = cpu.alloc(64);
    cpu.free(stale);
    for (const fake of [0x7ffd12345678, stale, h + 1, -h, h + 0.5]) {
      assert.throws(() => cpu.fill(dense(fake), 4, 0), RangeError, `fill through ${fake}`);
      assert.throws(() => cpu.unary('exp', dense(h), dense(fake), 4, 0), RangeError, `unary into ${fake}`);
      assert.throws(() => addon.sumOfSquares(0, fake, 0, 4), RangeError, `raw sumOfSquares of ${fake}`);
      assert.throws(() => cpu.free(fake), RangeError, `free(${fake})`);
      assert.throws(() => cpu.download(fake, 0, 4), RangeError, `download(${fake})`);
    }
    assert.deepEqual(Array.from(new Float32Array(cpu.download(h, 0, 64))), new Array(16).fill(1));
  });
});

test('a freed handle stays dead when its slot is reused', () => {
  const first = cpu.alloc(32);
  cpu.free(first);
  const second = cpu.alloc(32);
  try {
    assert.notEqual(second, first);
    assert.throws(() => cpu.fill(dense(first), 1, 0), /freed buffer/);
    assert.throws(() => cpu.free(first), /freed buffer/);
    cpu.fill(dense(second), 8, 2);
    assert.deepEqual(Array.from(new Float32Array(cpu.download(second, 0, 32))), new Array(8).fill(2));
  } finally {
    cpu.free(second);
  }
});

test('kernel extents are checked against the buffer: counts, offsets, strides, matrices', () => {
  withBuffer(64, (h) => {
    assert.throws(() => cpu.fill(dense(h), 17, 0), {
      name: 'RangeError',
      message: /fill: dst needs elements \[0, 17\)/,
    });
    assert.throws(() => cpu.fill(dense(h, 'float64'), 9, 0), RangeError);
    assert.throws(() => cpu.fill(dense(h, 'float32', 13), 4, 0), RangeError);
    assert.throws(() => cpu.fill(dense(h, 'float32', 17), 0, 0), /past the end/);
    assert.throws(() => cpu.fill(dense(h), -1, 0), RangeError);
    assert.throws(() => cpu.fill(dense(h), 2.5, 0), RangeError);
    const strided = (strides: number[], offset = 0) => ({ ...dense(h, 'float32', offset), strides });
    assert.throws(() => cpu.copy(strided([4, 1]), strided([8, 1]), [4, 4]), /dst needs elements/);
    assert.throws(() => cpu.copy(strided([-4, 1]), strided([4, 1]), [4, 4]), /before its offset/);
    cpu.copy(strided([-4, 1], 12), strided([4, 1]), [4, 4]);
    const matmul = {
      a: dense(h),
      b: dense(h),
      c: dense(h),
      m: 4,
      n: 4,
      k: 4,
      transA: false,
      transB: false,
      lda: 4,
      ldb: 4,
      ldc: 4,
      strideA: 16,
      strideB: 0,
      strideC: 0,
      batch: 2,
      alpha: 1,
      beta: 0,
    };
    assert.throws(() => cpu.matmul(matmul), /gemm: a needs elements \[0, 32\)/);
    assert.throws(() => cpu.matmul({ ...matmul, batch: 1, ldc: 5 }), /gemm: c needs elements \[0, 19\)/);
  });
});

test('ids and targets the kernels read through are bounded on the CPU, and may not alias the outputs', () => {
  const table = cpu.alloc(4 * 8),
    ids = cpu.alloc(4 * 2),
    grad = cpu.alloc(4 * 8),
    logits = cpu.alloc(4 * 8),
    stats = cpu.alloc(4 * 4);
  try {
    cpu.fill(dense(table), 8, 0);
    cpu.fill(dense(grad), 8, 1);
    cpu.upload(ids, 0, new Int32Array([1, 4]));
    // gradTable holds 4 rows of 2: id 4 would write past it.
    assert.throws(
      () => cpu.embeddingGrad(dense(ids, 'int32'), dense(grad), dense(table), 2, 2),
      /embeddingGrad: ids\[1\] = 4 is outside \[0, 4\)/,
    );
    assert.deepEqual(Array.from(new Float32Array(cpu.download(table, 0, 32))), new Array(8).fill(0));
    cpu.upload(ids, 0, new Int32Array([1, 3]));
    cpu.embeddingGrad(dense(ids, 'int32'), dense(grad), dense(table), 2, 2);
    assert.deepEqual(Array.from(new Float32Array(cpu.download(table, 0, 32))), [0, 0, 1, 1, 0, 0, 1, 1]);
    // The forward reports the first bad id's position (the engine's contract) instead of reading its row.
    cpu.upload(ids, 0, new Int32Array([0, -7]));
    assert.equal(cpu.embedding(dense(table), dense(ids, 'int32'), dense(grad), 2, 2, 4), 1);
    // Targets outside [0, vocab) other than ignoreIndex.
    cpu.upload(ids, 0, new Int32Array([3, 9]));
    assert.throws(
      () => cpu.crossEntropy(dense(logits), dense(ids, 'int32'), dense(stats), dense(stats, 'float32', 2), 2, 4, -100),
      /crossEntropy: targets\[1\] = 9 is outside \[0, 4\)/,
    );
    cpu.upload(ids, 0, new Int32Array([3, -100]));
    cpu.crossEntropy(dense(logits), dense(ids, 'int32'), dense(stats), dense(stats, 'float32', 2), 2, 4, -100);
    // Targets that share bytes with the losses would change under the kernel after the check.
    assert.throws(
      () => cpu.crossEntropy(dense(logits), dense(ids, 'int32'), dense(ids, 'float32'), dense(stats), 2, 4, -100),
      /targets overlaps losses/,
    );
  } finally {
    for (const b of [table, ids, grad, logits, stats]) cpu.free(b);
  }
});

test('wrong argument kinds are TypeErrors naming the argument', () => {
  withBuffer(64, (h) => {
    assert.throws(() => cpu.fill(dense(h), '4' as unknown as number, 0), {
      name: 'TypeError',
      message: /fill: count must be a number, got a string/,
    });
    assert.throws(() => cpu.softmax(dense(h), dense(h), 2, 2, 1 as unknown as boolean), {
      name: 'TypeError',
      message: /softmax: log must be a boolean/,
    });
    assert.throws(() => cpu.unary('nope' as 'exp', dense(h), dense(h), 1, 0), {
      name: 'TypeError',
      message: /unary: op must be a number, got undefined/,
    });
    assert.throws(() => cpu.fill(dense(h, 'float8' as DType), 1, 0), {
      name: 'TypeError',
      message: /fill: dtype must be a number/,
    });
  });
});
