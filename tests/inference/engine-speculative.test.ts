import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/engine/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { getEngine } from '../../src/engine/index.js';
import { andromedaFamily, unwrapAndromeda } from '../../src/train/andromeda-adapter.js';
import {
  InferenceEngine,
  type GenerationParams,
  type GenerationResult,
  type SpeculativeStats,
} from '../../src/inference/engine.js';
import { speculativeGenerate } from '../../src/inference/speculative.js';
import { filteredDistribution } from '../../src/inference/sampling.js';
import { ByteTokenizer } from '../../src/data/tokenizer/byte.js';
import { tokenizerMismatch } from '../../src/inference/load.js';
import type { LanguageModel } from '../../src/train/model.js';
import { draftModel, featureModel, greedy, runAll, tokenizer, type Submission } from '../helpers/inference-engine.js';

const cpu = getEngine('cpu');

const PROMPTS = [
  'Call me Ishmael.',
  'It was',
  'A much longer prompt that needs several chunks of prefill before it decodes.',
  '',
  'Some years ago',
  'never mind how long precisely',
];

test('speculative engine, greedy: concurrent requests = the engine without a draft = speculativeGenerate', async () => {
  const before = cpu.memoryStats().allocated;
  const target = featureModel(1);
  const drafts = [
    ['a different, smaller draft', draftModel(2)],
    ['the target as its own draft', featureModel(1)],
  ] as const;
  const submissions: Submission[] = PROMPTS.map((prompt, i) => ({
    prompt,
    params: greedy(14 + 5 * i),
    delayMs: i % 2 === 1 ? 5 * i : 0,
  }));
  try {
    const options = { blockSize: 4, numBlocks: 256, maxBatch: 4, tokenBudget: 24 };
    const plain = await runAll(target, submissions, options);
    assert.equal(plain.stats.speculative, null);
    for (const [label, draft] of drafts) {
      for (const k of [1, 3, 5]) {
        const spec = await runAll(target, submissions, { ...options, draft: { model: draft, tokens: k } });
        spec.results.forEach((r, i) => {
          assert.equal(r.finishReason, 'length', `${label}, k = ${k}, prompt ${i}`);
          assert.deepEqual(r.tokenIds, plain.results[i]!.tokenIds, `${label}, k = ${k}, prompt ${i}`);
        });
        const s = spec.stats.speculative!;
        assert.equal(s.draftTokens, k);
        assert.ok(s.proposed > 0 && s.accepted <= s.proposed, JSON.stringify(s));
        if (draft === drafts[1][1]) assert.equal(s.accepted, s.proposed, 'the target accepts all its own proposals');
        else assert.ok(s.accepted < s.proposed, `a different draft is rejected sometimes: ${JSON.stringify(s)}`);
        // A draft that is always right saves steps (the number also depends on how prefill chunks fall).
        if (draft === drafts[1][1] && k > 1)
          assert.ok(spec.stats.steps < plain.stats.steps, `steps: ${spec.stats.steps} vs ${plain.stats.steps}`);
      }
    }
    // The draft's greedy rounds replayed as decode graphs (the CPU engine's replay runs the step again).
    const graphed = await runAll(target, submissions, {
      ...options,
      graphsOnCpu: true,
      draft: { model: drafts[1][1], tokens: 3 },
    });
    const viaGraphs = graphed.stats.speculative!;
    assert.equal(viaGraphs.accepted, viaGraphs.proposed, 'the replayed rounds propose the target’s own tokens');
    graphed.results.forEach((r, i) => assert.deepEqual(r.tokenIds, plain.results[i]!.tokenIds, `graphs, prompt ${i}`));
    assert.ok(graphed.stats.graphs > 0, `the draft captured decode graphs: ${graphed.stats.graphs}`);
    // At batch 1 the engine's tokens are speculativeGenerate's.
    const prompt = PROMPTS[0]!;
    const context = Int32Array.of(tokenizer.eosId, ...tokenizer.encode(prompt));
    const alone = speculativeGenerate(unwrapAndromeda(target)!, unwrapAndromeda(drafts[0][1])!, context, {
      draftTokens: 3,
      maxTokens: 20,
      temperature: 0,
      blockSize: 4,
      vocab: tokenizer.vocabSize,
    });
    const engineAlone = await runAll(target, [{ prompt, params: greedy(20) }], {
      ...options,
      draft: { model: drafts[0][1], tokens: 3 },
    });
    assert.deepEqual(engineAlone.results[0]!.tokenIds, Array.from(alone.tokens));
    assert.equal(engineAlone.stats.speculative!.accepted, alone.accepted);
    assert.equal(engineAlone.stats.speculative!.proposed, alone.proposed);
  } finally {
    target.dispose();
    for (const [, d] of drafts) d.dispose();
  }
  assert.equal(cpu.memoryStats().allocated, before, 'tensors leaked');
});

test('speculative engine: stop strings, ids and maxTokens cut a run; logprob requests sample as usual', async () => {
  const target = featureModel(3);
  const draft = featureModel(3);
  try {
    const options = { blockSize: 8, numBlocks: 128, maxBatch: 4, tokenBudget: 32 };
    const free = (await runAll(target, [{ prompt: 'Hello', params: greedy(30) }], options)).results[0]!;
    const text = tokenizer.decode(free.tokenIds);
    // A stop string from the middle of the output, a stop id at token 9, limits not a multiple of k + 1.
    const stop = text.slice(7, 10);
    const submissions: Submission[] = [
      { prompt: 'Hello', params: { ...greedy(30), stop: [stop] } },
      { prompt: 'Hello', params: { ...greedy(30), ignoreEos: false, stopTokenIds: [free.tokenIds[9]!] } },
      { prompt: 'Hello', params: greedy(7) },
      { prompt: 'Hello', params: greedy(1) },
      { prompt: 'Hello', params: { ...greedy(12), logprobs: true, topLogprobs: 2 } },
    ];
    const plain = await runAll(target, submissions, options);
    const spec = await runAll(target, submissions, { ...options, draft: { model: draft, tokens: 4 } });
    spec.results.forEach((r, i) => {
      assert.deepEqual(r.tokenIds, plain.results[i]!.tokenIds, `request ${i}`);
      assert.equal(r.finishReason, plain.results[i]!.finishReason, `request ${i}`);
      assert.equal(r.text, plain.results[i]!.text, `request ${i}`);
    });
    assert.equal(spec.results[0]!.text, text.slice(0, text.indexOf(stop)), 'cut before the stop string');
    assert.equal(spec.results[1]!.tokenIds.length, free.tokenIds.indexOf(free.tokenIds[9]!) + 1);
    assert.equal(spec.results[2]!.tokenIds.length, 7);
    assert.equal(spec.results[3]!.tokenIds.length, 1);
    assert.equal(spec.results[4]!.tokenIds.length, 12);
    assert.ok(spec.stats.speculative!.accepted > 0);
  } finally {
    target.dispose();
    draft.dispose();
  }
});

test('speculative engine: preemption (tiny pool) and cancellation free both caches; same tokens', async () => {
  const target = featureModel(5);
  const draft = draftModel(6);
  try {
    const prompts = ['Call me Ishmael.', 'It was', 'A longer prompt that needs chunks of prefill.', 'abc'];
    const submissions = prompts.map((prompt) => ({ prompt, params: greedy(24) }));
    // Each request reaches up to ~73 positions (19 blocks of 4); 30 blocks cannot hold all four at once.
    const tight = { blockSize: 4, numBlocks: 30, maxBatch: 4, tokenBudget: 16 };
    const roomy = { ...tight, numBlocks: 256 };
    const plain = await runAll(target, submissions, roomy);
    const spec = await runAll(target, submissions, { ...tight, draft: { model: draft, tokens: 3 } });
    assert.ok(spec.stats.preemptions > 0, `the pool forced preemption: ${JSON.stringify(spec.stats)}`);
    spec.results.forEach((r, i) => assert.deepEqual(r.tokenIds, plain.results[i]!.tokenIds, `prompt ${i}`));

    const engine = new InferenceEngine(target, tokenizer, { ...roomy, draft: { model: draft, tokens: 3 } });
    try {
      const controller = new AbortController();
      const streams = [
        engine.submit('abc', { ...greedy(10_000), signal: controller.signal }),
        engine.submit('def', greedy(10_000)),
        engine.submit('ghi', greedy(8)),
      ];
      let seen = 0;
      for await (const _ of streams[1]!) {
        if (++seen === 5) break;
      }
      controller.abort();
      const results = await Promise.all(streams.map((s) => s.result));
      assert.deepEqual(
        results.map((r) => r.finishReason),
        ['cancelled', 'cancelled', 'length'],
      );
      assert.equal(engine.stats().blocks.used, 0, 'cancelled requests released their blocks');
    } finally {
      await engine.close();
    }
  } finally {
    target.dispose();
    draft.dispose();
  }
});

test('speculative engine: bad draft options are refused before anything is allocated', () => {
  const target = featureModel(1);
  const draft = draftModel(2);
  try {
    assert.throws(
      () => new InferenceEngine(target, tokenizer, { draft: { model: draft, tokens: 0 } }),
      /draft.tokens must be an integer from 1 to 15/,
    );
    assert.throws(
      () =>
        new InferenceEngine(target, tokenizer, { maxBatch: 8, tokenBudget: 16, draft: { model: draft, tokens: 3 } }),
      /tokenBudget must be an integer ≥ maxBatch · \(draft tokens \+ 1\) = 32/,
    );
    const smallVocab = andromedaFamily.create(
      andromedaFamily.presetConfig('tiny', 100, { dim: 32, depth: 1, heads: 2, headDim: 16, rotary: { dim: 8 } }),
      { seed: 1, device: 'cpu' },
    );
    assert.throws(
      () => new InferenceEngine(target, tokenizer, { draft: { model: smallVocab, tokens: 2 } }),
      /the tokenizer's vocabulary \(\d+\) exceeds the draft model's \(100\)/,
    );
    smallVocab.dispose();
  } finally {
    target.dispose();
    draft.dispose();
  }
});

/** Σ (observed − expected)² / expected; infinite when a token of zero probability was drawn. */
function chiSquare(counts: readonly number[], probs: readonly number[], total: number): number {
  let x = 0;
  probs.forEach((p, i) => {
    if (p > 0) x += (counts[i]! - total * p) ** 2 / (total * p);
    else if (counts[i]! > 0) x = Infinity;
  });
  return x;
}

test('speculative engine, sampling: the output has the target’s distribution (chi-square), any batch', async () => {
  // A vocabulary of 6 tokens (byte ids 0-5, the last one ending documents), so that the joint distribution of
  // two tokens has 36 cells.
  const vocab = 6;
  const small = Object.create(tokenizer, { vocabSize: { value: vocab }, eosId: { value: vocab - 1 } }) as ByteTokenizer;
  const model = (seed: number, shiftTokens: number): LanguageModel =>
    andromedaFamily.create(
      andromedaFamily.presetConfig('tiny', vocab, {
        dim: 32,
        depth: 1,
        heads: 2,
        headDim: 16,
        shiftTokens,
        rotary: { dim: 8 },
      }),
      { seed, device: 'cpu' },
    );
  const target = model(5, 2);
  const draft = model(6, 1);
  const sampling = { temperature: 1 };
  const prompt = [1, 4];
  const probsOf = (m: LanguageModel, tokens: number[]): number[] =>
    tidy(() =>
      noGrad(() => {
        const ids = Tensor.fromArray(Int32Array.from(tokens), [1, tokens.length], 'int32');
        const logits = m.forward(ids, { logits: 'last' }).toArray();
        const { ids: kept, probs } = filteredDistribution(logits.slice(logits.length - vocab), sampling);
        const dense = new Array<number>(vocab).fill(0);
        kept.forEach((id, r) => (dense[id] = probs[r]!));
        return dense;
      }),
    );
  // Exact joint distributions of the first two tokens under the target and under the draft.
  const joint = (m: LanguageModel): number[] => {
    const first = probsOf(m, prompt);
    return first.flatMap((p1, a) => probsOf(m, [...prompt, a]).map((p2) => p1 * p2));
  };
  try {
    const targetJoint = joint(target),
      draftJoint = joint(draft);
    const runs = 1000;
    const params = (seed: number): GenerationParams => ({
      ...sampling,
      seed,
      maxTokens: 2,
      ignoreEos: true,
      startWithEos: false,
    });
    const engine = new InferenceEngine(target, small, {
      blockSize: 4,
      numBlocks: 2048,
      maxBatch: 64,
      draft: { model: draft, tokens: 3 },
    });
    let results: GenerationResult[];
    let alone: GenerationResult;
    let stats: SpeculativeStats;
    try {
      results = await Promise.all(
        Array.from({ length: runs }, (_, seed) => engine.submit(Int32Array.from(prompt), params(seed)).result),
      );
      // A request's tokens depend on its seed, not on the batch it ran in.
      alone = await engine.submit(Int32Array.from(prompt), params(17)).result;
      stats = engine.stats().speculative!;
    } finally {
      await engine.close();
    }
    assert.deepEqual(alone.tokenIds, results[17]!.tokenIds, 'seed 17 alone = seed 17 in a batch of 64');
    assert.ok(stats.accepted > 0 && stats.accepted < stats.proposed, `both outcomes: ${JSON.stringify(stats)}`);
    const counts = new Array<number>(vocab * vocab).fill(0);
    for (const r of results) counts[r.tokenIds[0]! * vocab + r.tokenIds[1]!]!++;
    // 35 degrees of freedom: P(χ² > 66.6) = 0.001.
    const againstTarget = chiSquare(counts, targetJoint, runs);
    assert.ok(againstTarget < 66.6, `χ² against the target's distribution ${againstTarget.toFixed(1)}`);
    // The test has the power to see a wrong distribution: the draft's is far off.
    const againstDraft = chiSquare(counts, draftJoint, runs);
    assert.ok(againstDraft > 66.6, `χ² against the draft's distribution ${againstDraft.toFixed(1)}`);
  } finally {
    target.dispose();
    draft.dispose();
  }
});

test('a draft checkpoint must read token ids as the same bytes as the model (tokenizerMismatch)', () => {
  assert.equal(tokenizerMismatch(tokenizer, new ByteTokenizer()), null);
  const fewer = Object.create(tokenizer, { vocabSize: { value: 100 } }) as ByteTokenizer;
  assert.match(tokenizerMismatch(tokenizer, fewer)!, /100 tokens instead of \d+/);
  const otherEos = Object.create(tokenizer, { eosId: { value: 3 } }) as ByteTokenizer;
  assert.match(tokenizerMismatch(tokenizer, otherEos)!, /end-of-document id 3 instead of/);
  const swapped = Object.create(tokenizer, {
    tokenBytes: { value: (id: number) => tokenizer.tokenBytes(id === 65 ? 66 : id) },
  }) as ByteTokenizer;
  assert.equal(tokenizerMismatch(tokenizer, swapped), 'token 65 stands for other bytes');
});

test('speculative engine: shared prompt prefixes hold the draft’s K/V too (self-draft: all accepted)', async () => {
  const target = featureModel(7);
  const draft = featureModel(7);
  try {
    const system = 'You are a helpful assistant who answers briefly. ';
    const questions = ['Why is the sea salty?', 'Who wrote Moby-Dick?', 'What is a whale?'];
    const options = { blockSize: 4, numBlocks: 256, maxBatch: 4, tokenBudget: 32 };
    const plain = await runAll(
      target,
      questions.map((q) => ({ prompt: system + q, params: greedy(12) })),
      options,
    );
    // One after another, so that later requests find the first one's blocks in the pool.
    const engine = new InferenceEngine(target, tokenizer, { ...options, draft: { model: draft, tokens: 3 } });
    try {
      for (const [i, q] of questions.entries()) {
        const r = await engine.submit(system + q, greedy(12)).result;
        assert.deepEqual(r.tokenIds, plain.results[i]!.tokenIds, `question ${i}`);
      }
      const stats = engine.stats();
      assert.ok(stats.prefixCache.hitBlocks >= 2 * 10, `the system prompt was shared: ${JSON.stringify(stats)}`);
      const s = stats.speculative!;
      assert.ok(s.proposed > 0);
      assert.equal(s.accepted, s.proposed, 'the draft read right K/V from the shared blocks');
    } finally {
      await engine.close();
    }
  } finally {
    target.dispose();
    draft.dispose();
  }
});

test('speculative engine: blocks shared back after preemption hold the draft’s K/V too', async () => {
  const target = featureModel(9);
  const draft = featureModel(9);
  try {
    const prompts = ['Call me Ishmael.', 'It was', 'A longer prompt that needs chunks of prefill.', 'abc', 'The sea'];
    // The longest request alone takes up to 22 blocks of 4; 24 cannot hold several at once.
    const tight = { blockSize: 4, numBlocks: 24, maxBatch: 5, tokenBudget: 20 };
    const spec = await runAll(
      target,
      prompts.map((prompt) => ({ prompt, params: greedy(40) })),
      { ...tight, draft: { model: draft, tokens: 3 } },
    );
    assert.ok(spec.stats.preemptions > 0, `the pool forced preemption: ${JSON.stringify(spec.stats)}`);
    assert.ok(spec.stats.prefixCache.hitBlocks > 0, 'preempted requests found their blocks again');
    const s = spec.stats.speculative!;
    assert.equal(s.accepted, s.proposed, `every proposal of the target's own copy is accepted: ${JSON.stringify(s)}`);
  } finally {
    target.dispose();
    draft.dispose();
  }
});
