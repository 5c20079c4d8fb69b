import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockManager } from '../../src/inference/block-manager.js';

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

test('allocation grows block tables, counts blocks and refuses (changing nothing) when the pool is short', () => {
  const m = new BlockManager(6, 4);
  assert.equal(m.startSequence(1, range(10)), 0);
  assert.equal(m.ensureCapacity(1, 10), true); // 3 blocks
  assert.equal(m.blockTable(1).length, 3);
  assert.deepEqual(m.usage(), { total: 6, used: 3, cached: 0, free: 3 });
  m.startSequence(2, range(5));
  assert.equal(m.ensureCapacity(2, 16), false, '4 blocks asked, 3 left');
  assert.deepEqual(m.blockTable(2), [], 'a refused allocation takes nothing');
  assert.deepEqual(m.usage(), { total: 6, used: 3, cached: 0, free: 3 });
  assert.equal(m.ensureCapacity(2, 12), true);
  assert.equal(m.allocatableBlocks, 0);
  assert.equal(m.ensureCapacity(1, 12), true, 'positions inside the table need no block');
  assert.equal(m.ensureCapacity(1, 13), false);
  const all = [...m.blockTable(1), ...m.blockTable(2)];
  assert.deepEqual([...all].sort(), range(6), 'every block handed out once');
  m.freeSequence(1);
  assert.deepEqual(m.usage(), { total: 6, used: 3, cached: 0, free: 3 }, 'blocks without a hash are plain free');
  assert.throws(() => m.blockTable(1), /sequence 1 has no blocks/);
  assert.throws(() => new BlockManager(4, 3), /power of two/);
  assert.throws(() => new BlockManager(0, 4), /numBlocks/);
});

test('full blocks are shared by a chained hash: a common prefix is found, a different parent is not', () => {
  const m = new BlockManager(16, 4);
  const system = range(8, 100); // two full blocks
  const a = [...system, 1, 2, 3];
  m.startSequence(1, a);
  assert.equal(m.ensureCapacity(1, a.length), true);
  m.markComputed(1, a, a.length);
  const b = [...system, 7, 8, 9, 10, 11];
  assert.equal(m.startSequence(2, b), 8, 'both system blocks reused');
  assert.deepEqual(m.blockTable(2), m.blockTable(1).slice(0, 2));
  for (const block of m.blockTable(2)) assert.equal(m.refCount(block), 2);
  assert.equal(m.refCount(m.blockTable(1)[2]!), 1, 'the partial block is never shared');
  // Same second block, different first block: the chain makes it a different block.
  const c = [...range(4, 500), ...system.slice(4), 0];
  assert.equal(m.startSequence(3, c), 0);
  // A context of exactly the shared blocks still computes its last block (its last token must be fed).
  assert.equal(m.startSequence(4, system), 4);
  // Blocks are shareable only once computed.
  m.startSequence(5, range(9, 300));
  m.ensureCapacity(5, 9);
  m.markComputed(5, range(9, 300), 3);
  assert.equal(m.startSequence(6, range(9, 300)), 0, 'block 0 of sequence 5 is not full of computed positions yet');
  m.markComputed(5, range(9, 300), 6);
  assert.equal(m.startSequence(7, range(9, 300)), 4);
});

test('released blocks stay findable until reused, least recently released first', () => {
  const m = new BlockManager(4, 2);
  const a = range(5, 10); // blocks [10,11] [12,13] + partial
  m.startSequence(1, a);
  m.ensureCapacity(1, 5);
  m.markComputed(1, a, 5);
  const [a0, a1, a2] = m.blockTable(1);
  m.freeSequence(1);
  assert.deepEqual(m.usage(), { total: 4, used: 0, cached: 2, free: 2 });
  // A sequence sharing the first block revives it (refcount 1 again) without recomputing.
  assert.equal(m.startSequence(2, [10, 11, 99]), 2);
  assert.deepEqual(m.blockTable(2), [a0]);
  assert.deepEqual(m.usage(), { total: 4, used: 1, cached: 1, free: 2 });
  m.freeSequence(2);
  // Now the free blocks go first, then the cached ones: a1 (released before a0's second release) first.
  m.startSequence(3, range(8, 50));
  assert.equal(m.ensureCapacity(3, 6), true); // 3 blocks: 2 free + the oldest cached
  const taken = m.blockTable(3);
  assert.ok(taken.includes(a2!), 'the unhashed partial block was plain free');
  assert.ok(taken.includes(a1!), 'the least recently released cached block is evicted first');
  assert.ok(!taken.includes(a0!));
  assert.equal(m.startSequence(4, [10, 11, 12, 13, 14]), 2, 'a0 is still findable, a1 is gone');
  assert.deepEqual(m.usage(), { total: 4, used: 4, cached: 0, free: 0 });
  assert.equal(m.ensureCapacity(4, 5), false, 'exhausted: reported, not thrown');
});

test('two sequences computing the same prefix at once keep separate blocks; freeing both leaves one cached', () => {
  const m = new BlockManager(8, 2);
  const t = [1, 2, 3, 4, 5];
  for (const id of [1, 2]) {
    m.startSequence(id, t);
    m.ensureCapacity(id, 5);
  }
  m.markComputed(1, t, 5);
  m.markComputed(2, t, 5);
  assert.notDeepEqual(m.blockTable(1), m.blockTable(2));
  m.freeSequence(1);
  m.freeSequence(2);
  assert.deepEqual(m.usage(), { total: 8, used: 0, cached: 2, free: 6 });
  assert.equal(m.startSequence(3, t), 4);
});

test('without prefix sharing nothing is found or cached', () => {
  const m = new BlockManager(4, 2, false);
  m.startSequence(1, [1, 2, 3]);
  m.ensureCapacity(1, 3);
  m.markComputed(1, [1, 2, 3], 3);
  m.freeSequence(1);
  assert.deepEqual(m.usage(), { total: 4, used: 0, cached: 0, free: 4 });
  assert.equal(m.startSequence(2, [1, 2, 3]), 0);
});
