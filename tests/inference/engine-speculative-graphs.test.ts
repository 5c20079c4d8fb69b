import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/engine/index.js';
import { getEngine } from '../../src/engine/index.js';
import type { DeviceGraph } from '../../src/engine/engine.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { draftModel, featureModel, greedy, runAll, tokenizer, type Submission } from '../helpers/inference-engine.js';

const cpu = getEngine('cpu');

// Lengths from one token (the empty prompt: its first step starts at position 0) to several blocks.
const PROMPTS = [
  'Call me Ishmael.',
  '',
  'A much longer prompt, one that takes several blocks of the cache and a few chunks of prefill before it decodes.',
  'It was',
  'Some years ago - never mind how long precisely',
  'x',
  'having little or no money in my purse, and nothing particular to interest me on shore',
];

/**
 * Requests of different lengths and token limits (none a multiple of k + 1 for every k), all submitted at once
 * so that the steps do not depend on timing: with more requests than maxBatch, the later ones join the running
 * batch as earlier ones leave.
 */
function submissions(count: number): Submission[] {
  return PROMPTS.slice(0, count).map((prompt, i) => ({ prompt, params: greedy(9 + 7 * i) }));
}

test('speculative graphs: greedy outputs equal the target alone, token for token; graphs replayed', async () => {
  const before = cpu.memoryStats().allocated;
  const target = featureModel(1);
  const draft = draftModel(2);
  const self = featureModel(1);
  try {
    // maxBatch 5: buckets 1, 2, 4 and 5 (padded batches of 3); block size 4 < k + 1 = 5 rows for k = 4.
    const options = { blockSize: 4, numBlocks: 512, maxBatch: 5, tokenBudget: 40 };
    for (const count of [1, 3, PROMPTS.length]) {
      const batch = submissions(count);
      const plain = await runAll(target, batch, options);
      for (const k of [1, 2, 4]) {
        const label = `${count} requests, k = ${k}`;
        const eager = await runAll(target, batch, { ...options, draft: { model: draft, tokens: k } });
        const graphed = await runAll(target, batch, {
          ...options,
          graphsOnCpu: true,
          draft: { model: draft, tokens: k },
        });
        graphed.results.forEach((r, i) => {
          assert.equal(r.finishReason, 'length', `${label}, prompt ${i}`);
          assert.deepEqual(r.tokenIds, plain.results[i]!.tokenIds, `${label}, prompt ${i}`);
        });
        const s = graphed.stats.speculative!;
        assert.ok(s.graphVerifications > 0 && s.graphCatchUps > 0, `${label}: graphs replayed: ${JSON.stringify(s)}`);
        assert.ok(s.accepted > 0 && s.accepted < s.proposed, `${label}: both outcomes: ${JSON.stringify(s)}`);
        assert.ok(graphed.stats.graphs >= 2, `${label}: graphs captured: ${graphed.stats.graphs}`);
        assert.equal(eager.stats.speculative!.graphVerifications, 0, `${label}: no graphs without graphsOnCpu`);
        assert.equal(eager.stats.graphs, 0);
        // The draft's catch-up graph computes what its eager forward does: the same proposals, so the same counts
        // (and the same steps: the CPU engine's rows do not depend on the rows beside them).
        assert.deepEqual(
          { proposed: s.proposed, accepted: s.accepted, steps: graphed.stats.steps },
          {
            proposed: eager.stats.speculative!.proposed,
            accepted: eager.stats.speculative!.accepted,
            steps: eager.stats.steps,
          },
          label,
        );
      }
    }
    // The target as its own draft: the catch-up graph must leave the draft's cache exactly the target's, so
    // every proposal is the target's own token.
    const selfDrafted = await runAll(target, submissions(PROMPTS.length), {
      ...options,
      graphsOnCpu: true,
      draft: { model: self, tokens: 4 },
    });
    const s = selfDrafted.stats.speculative!;
    assert.ok(s.graphVerifications > 0 && s.graphCatchUps > 0);
    assert.equal(s.accepted, s.proposed, `every proposal accepted: ${JSON.stringify(s)}`);
  } finally {
    target.dispose();
    draft.dispose();
    self.dispose();
  }
  assert.equal(cpu.memoryStats().allocated, before, 'tensors leaked');
});

test('speculative graphs: sampled and logprob requests in a step leave it eager, same tokens', async () => {
  const target = featureModel(3);
  const draft = draftModel(4);
  try {
    const options = { blockSize: 8, numBlocks: 256, maxBatch: 4, tokenBudget: 32 };
    const batch: Submission[] = [
      { prompt: 'Hello', params: greedy(20) },
      { prompt: 'Hello there', params: { ...greedy(20), logprobs: true } },
      { prompt: 'Goodbye', params: { temperature: 0.8, seed: 3, maxTokens: 20, ignoreEos: true } },
    ];
    const plain = await runAll(target, batch, options);
    const graphed = await runAll(target, batch, { ...options, graphsOnCpu: true, draft: { model: draft, tokens: 3 } });
    const eager = await runAll(target, batch, { ...options, draft: { model: draft, tokens: 3 } });
    graphed.results.forEach((r, i) => {
      assert.deepEqual(r.tokenIds, eager.results[i]!.tokenIds, `request ${i}: graphs on = graphs off`);
      if (i < 2) assert.deepEqual(r.tokenIds, plain.results[i]!.tokenIds, `greedy request ${i} = the target alone`);
    });
    // All three run together to the end: no step of only greedy speculating requests.
    assert.equal(graphed.stats.speculative!.graphVerifications, 0);
  } finally {
    target.dispose();
    draft.dispose();
  }
});

test('speculative graphs: a device that refuses the capture leaves the steps eager for good, same tokens', async () => {
  const before = cpu.memoryStats().allocated;
  const target = featureModel(5);
  const draft = draftModel(6);
  const capture = cpu.captureGraph;
  const probe = Tensor.fromArray(Int32Array.of(1), [1], 'int32');
  let attempts = 0;
  // A step with an op that cannot be captured: a device read inside the capture, which the engine refuses.
  cpu.captureGraph = (fn: () => void): DeviceGraph => {
    attempts++;
    return capture.call(cpu, () => {
      probe.toArray();
      fn();
    });
  };
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }): void => {
    if (w.code === 'ANDROMEDA_GRAPH_CAPTURE') warnings.push(w.message);
  };
  process.on('warning', onWarning);
  try {
    const options = { blockSize: 4, numBlocks: 512, maxBatch: 4, tokenBudget: 32 };
    const batch = submissions(4);
    const plain = await runAll(target, batch, options);
    // Without a draft: the decode steps.
    const decodes = await runAll(target, batch, { ...options, graphsOnCpu: true });
    decodes.results.forEach((r, i) =>
      assert.deepEqual(r.tokenIds, plain.results[i]!.tokenIds, `no draft, prompt ${i}`),
    );
    assert.equal(decodes.stats.graphs, 0);
    assert.equal(attempts, 1, `one capture attempt over ${decodes.stats.steps} steps`);
    for (const k of [1, 3]) {
      attempts = 0;
      warnings.length = 0;
      const refused = await runAll(target, batch, {
        ...options,
        graphsOnCpu: true,
        draft: { model: draft, tokens: k },
      });
      refused.results.forEach((r, i) =>
        assert.deepEqual(r.tokenIds, plain.results[i]!.tokenIds, `k = ${k}, prompt ${i}`),
      );
      const s = refused.stats.speculative!;
      assert.equal(s.graphVerifications + s.graphCatchUps, 0);
      assert.equal(refused.stats.graphs, 0);
      // Each kind of graph tried once (verification, catch-up, and the draft's decode rounds when k > 1).
      const kinds = k > 1 ? 3 : 2;
      assert.equal(attempts, kinds, `one capture attempt per kind of graph, over ${refused.stats.steps} steps`);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(warnings.length, kinds, warnings.join('\n'));
      assert.match(warnings[0]!, /the capture failed .*download.*; these steps run without graphs from now on/);
    }
  } finally {
    cpu.captureGraph = capture;
    process.off('warning', onWarning);
    probe.dispose();
    target.dispose();
    draft.dispose();
  }
  assert.equal(cpu.memoryStats().allocated, before, 'the abandoned captures leaked tensors');
});
