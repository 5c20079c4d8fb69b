import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BucketAccumulator, positionBuckets } from '../../src/eval/position-buckets.js';

test('buckets double from the first width and end at the length', () => {
  assert.deepEqual(positionBuckets(4096, 512), [
    { start: 0, end: 512 },
    { start: 512, end: 1024 },
    { start: 1024, end: 2048 },
    { start: 2048, end: 4096 },
  ]);
  assert.deepEqual(positionBuckets(5000, 1000), [
    { start: 0, end: 1000 },
    { start: 1000, end: 2000 },
    { start: 2000, end: 4000 },
    { start: 4000, end: 5000 },
  ]);
  assert.deepEqual(positionBuckets(300, 512), [{ start: 0, end: 300 }]);
  assert.throws(() => positionBuckets(0, 512), /length must be a positive integer/);
  assert.throws(() => positionBuckets(100, 0), /first bucket's width/);
});

test('each position lands in the bucket that holds it', () => {
  const acc = new BucketAccumulator(positionBuckets(64, 8));
  const expected = (p: number): number => (p < 8 ? 0 : Math.floor(Math.log2(p / 8)) + 1);
  for (let p = 0; p < 64; p++) assert.equal(acc.bucketOf(p), expected(p), `position ${p}`);
  assert.throws(() => acc.bucketOf(64), /outside the buckets/);
  assert.throws(() => acc.bucketOf(-1), /outside the buckets/);
});

test('bucket means, bits per byte and running means are the sums over their positions', () => {
  const acc = new BucketAccumulator(positionBuckets(8, 2)); // [0,2) [2,4) [4,8)
  const losses = [1, 3, 2, 2, 4, 4, 4, 8];
  const bytes = [1, 1, 1, 0, 2, 1, 1, 1];
  acc.add(losses, bytes);
  acc.add(
    losses.map((l) => l + 1),
    bytes,
  );
  const stats = acc.stats();
  assert.equal(stats.length, 3);
  // Bucket [0, 2): losses 1, 3, 2, 4 over two windows.
  assert.equal(stats[0]!.tokens, 4);
  assert.equal(stats[0]!.loss, 2.5);
  assert.equal(stats[0]!.bitsPerByte, 10 / (Math.LN2 * 4));
  // Bucket [4, 8): 4 + 4 + 4 + 8 and the same plus 4, over 2 × 5 bytes.
  assert.equal(stats[2]!.tokens, 8);
  assert.equal(stats[2]!.loss, (20 + 24) / 8);
  assert.equal(stats[2]!.bitsPerByte, 44 / (Math.LN2 * 10));
  // Running mean to the end of [2, 4): the first four positions of both windows.
  assert.equal(stats[1]!.lossUpToEnd, (8 + 12) / 8);
  const all = losses.reduce((a, b) => a + b, 0) * 2 + 8;
  assert.equal(stats[2]!.lossUpToEnd, all / 16);
  assert.equal(stats[2]!.bitsPerByteUpToEnd, all / (Math.LN2 * 16));
});

test('windows shorter than the buckets leave the later buckets out', () => {
  const acc = new BucketAccumulator(positionBuckets(16, 4));
  acc.add([1, 1, 1, 1, 2], [1, 1, 1, 1, 1]);
  const stats = acc.stats();
  assert.deepEqual(
    stats.map((s) => [s.start, s.end, s.tokens]),
    [
      [0, 4, 4],
      [4, 8, 1],
    ],
  );
  assert.throws(() => acc.add([1, 2], [1]), /2 losses but 1 byte counts/);
  assert.throws(() => acc.add(new Array(17).fill(1), new Array(17).fill(1)), /outside the buckets/);
});
