import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/engine/index.js';
import { getEngine } from '../../src/engine/index.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import type { Andromeda } from '../../src/model/andromeda.js';
import type { PagedKVCache } from '../../src/model/paged-kv-cache.js';
import { buildPagedStep, type PagedSequenceChunk } from '../../src/model/paged-step.js';
import { SpeculativeGraphs, type FixedRowsSequence } from '../../src/inference/speculative-graphs.js';
import { BlockAllocator, testModel } from '../model/paged-helpers.js';
import { FEATURE_SHAPE } from '../helpers/inference-engine.js';

const cpu = getEngine('cpu');
const VOCAB = 97;

function model(): Andromeda {
  return testModel({ vocabSize: VOCAB, ...FEATURE_SHAPE }, 11);
}

/** Runs a paged forward of `chunks` eagerly; the argmax of every row when `logits` is 'all'. */
function eagerForward(
  m: Andromeda,
  cache: PagedKVCache,
  chunks: PagedSequenceChunk[],
  logits: 'last' | 'all',
): number[] {
  return noGrad(() =>
    tidy(() => {
      const step = buildPagedStep(chunks, { blockSize: cache.blockSize, logits });
      try {
        const out = m.forwardPaged(step, cache).toArray();
        const width = out.length / step.logitRows.size;
        return Array.from({ length: step.logitRows.size }, (_, r) => {
          const row = out.subarray(r * width, r * width + VOCAB);
          return row.indexOf(Math.max(...row));
        });
      } finally {
        step.dispose();
      }
    }),
  );
}

/** Every layer's key and value pools without the scratch block, as host arrays. */
function pools(cache: PagedKVCache, scratch: number): number[][] {
  const out: number[][] = [];
  for (let l = 0; l < cache.depth; l++) {
    for (const pool of [cache.layer(l).keys, cache.layer(l).values]) {
      const all = Array.from(pool.toArray());
      const perBlock = all.length / cache.numBlocks;
      out.push([...all.slice(0, scratch * perBlock), ...all.slice((scratch + 1) * perBlock)]);
    }
  }
  return out;
}

test('SpeculativeGraphs: the argmax and the stored K/V of an eager forward; padding rows store nothing', () => {
  const before = cpu.memoryStats().allocated;
  const m = model();
  const k = 3;
  const rows = 1 + k;
  for (const blockSize of [1, 4]) {
    const numBlocks = 96;
    const scratch = numBlocks;
    const ring = 2 + k;
    const viaGraphs = m.createPagedKVCache(numBlocks + 1, { blockSize, ring });
    const eager = m.createPagedKVCache(numBlocks + 1, { blockSize, ring });
    const graphs = new SpeculativeGraphs(m, viaGraphs, {
      scratchBlock: scratch,
      vocab: VOCAB,
      maxBatch: 4,
      rows,
      logits: rows,
      what: 'test graphs',
    });
    try {
      const blocks = new BlockAllocator(numBlocks, blockSize);
      // Contexts of different lengths; proposals 3, 1 and 0 (k = 3): rows past them compute but store nothing,
      // and the last sequence's table does not even reach them.
      const contexts = [9, 2, 14].map((n, s) => Array.from({ length: n }, (_, i) => (7 * s + 3 * i + 1) % VOCAB));
      const proposals = [[5, 6, 7], [8], []];
      const tables = contexts.map((c, s) => blocks.take(Math.ceil((c.length + (s === 2 ? 1 : rows)) / blockSize)));
      // Both caches hold the contexts but their last token, as after prefill.
      for (const cache of [viaGraphs, eager])
        eagerForward(
          m,
          cache,
          contexts.map((c, s) => ({ tokens: c.slice(0, -1), cached: 0, blockTable: tables[s]! })),
          'last',
        );
      const sequences: FixedRowsSequence[] = contexts.map((c, s) => {
        const tokens = [c[c.length - 1]!, ...proposals[s]!];
        return {
          first: c.length - 1,
          tokens: [...tokens, ...new Array<number>(rows - tokens.length).fill(0)],
          stores: { from: 0, to: tokens.length },
          blockTable: tables[s]!,
        };
      });
      const ids = graphs.run(sequences)!;
      assert.equal(ids.length, 3 * rows);
      const expected = eagerForward(
        m,
        eager,
        contexts.map((c, s) => ({
          tokens: [c[c.length - 1]!, ...proposals[s]!],
          cached: c.length - 1,
          blockTable: tables[s]!,
        })),
        'all',
      );
      let row = 0;
      sequences.forEach((sq, s) => {
        const own = sq.stores.to;
        assert.deepEqual(
          Array.from(ids.subarray(s * rows, s * rows + own)),
          expected.slice(row, row + own),
          `block size ${blockSize}, sequence ${s}`,
        );
        row += own;
      });
      assert.deepEqual(pools(viaGraphs, scratch), pools(eager, scratch), `block size ${blockSize}: K/V pools`);
      // The same bucket again (batch 3 → 4) replays the same graph with new inputs; a batch of 1 captures another.
      assert.deepEqual(Array.from(graphs.run(sequences)!), Array.from(ids), 'replayed with the same inputs');
      assert.equal(graphs.size, 1);
      // Sequence 1 again, its rows now already in the cache (storing none of them changes nothing).
      const single = graphs.run([{ ...sequences[1]!, stores: { from: 0, to: 0 } }])!;
      assert.deepEqual(Array.from(single.subarray(0, 2)), expected.slice(4, 6));
      assert.equal(graphs.size, 2);
      assert.throws(() => graphs.run([{ ...sequences[0]!, tokens: [1, 2] }]), /sequence 0 brings 2 tokens, not 4/);
      assert.throws(
        () => graphs.run([{ ...sequences[2]!, stores: { from: 0, to: rows } }]),
        /sequence 0 has no block for position/,
      );
    } finally {
      graphs.dispose();
      viaGraphs.dispose();
      eager.dispose();
    }
  }
  m.dispose();
  assert.equal(cpu.memoryStats().allocated, before, 'tensors leaked');
});
