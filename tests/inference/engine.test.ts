import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/engine/index.js';
import { InferenceEngine, QueueFullError, type GenerationParams } from '../../src/inference/engine.js';
import { InferenceEngine as PublicInferenceEngine } from '../../src/index.js';
import type { LanguageModel } from '../../src/train/model.js';
import { featureModel, greedy, referenceGreedy, tokenizer } from '../helpers/inference-engine.js';

test('the engine is exported from the package entry point', () => {
  assert.equal(PublicInferenceEngine, InferenceEngine);
});

test('concurrent greedy requests of different lengths, in a pool that must preempt, = uncached greedy', async () => {
  const model = featureModel(1);
  const prompts = ['Call me Ishmael.', 'It was', 'A much longer prompt that needs several chunks of prefill.', ''];
  const maxTokens = 24;
  // Each request reaches up to 59 + 24 positions (21 blocks of 4); 40 blocks cannot hold all four at once.
  const engine = new InferenceEngine(model, tokenizer, { blockSize: 4, numBlocks: 40, maxBatch: 4, tokenBudget: 16 });
  try {
    const streams = prompts.map((p) => engine.submit(p, greedy(maxTokens)));
    const results = await Promise.all(streams.map((s) => s.result));
    const stats = engine.stats();
    assert.equal(stats.paged, true, 'an Andromeda model runs over the paged cache');
    assert.equal(stats.graphs, 0, 'no decode graphs on the CPU unless asked');
    assert.ok(stats.preemptions > 0, `the pool forced preemption (stats: ${JSON.stringify(stats)})`);
    results.forEach((r, i) => {
      assert.equal(r.finishReason, 'length');
      assert.deepEqual(r.tokenIds, referenceGreedy(model, prompts[i]!, maxTokens), `prompt ${i}`);
      assert.equal(r.text, tokenizer.decode(r.tokenIds));
      assert.deepEqual(r.usage, {
        promptTokens: tokenizer.encode(prompts[i]!).length + 1,
        completionTokens: maxTokens,
      });
    });
    assert.equal(stats.blocks.used, 0, 'every block released');
    assert.equal(stats.running + stats.waiting, 0);
    assert.equal(stats.generatedTokens, prompts.length * maxTokens);
  } finally {
    await engine.close();
    model.dispose();
  }
});

test('a shared system prompt is found in the cache by later requests, with the same tokens', async () => {
  const model = featureModel(2);
  const system = 'You are a helpful assistant who answers briefly. ';
  const questions = ['Why?', 'Who are you?', 'Where is the sea?'];
  const engine = new InferenceEngine(model, tokenizer, { blockSize: 8, numBlocks: 64, maxBatch: 4, tokenBudget: 64 });
  try {
    const first = await engine.submit(system + questions[0], greedy(8)).result;
    assert.equal(engine.stats().prefixCache.hitBlocks, 0);
    const later = await Promise.all(questions.slice(1).map((q) => engine.submit(system + q, greedy(8)).result));
    const { prefixCache } = engine.stats();
    // The context is the end-of-document token + the system prompt (49 bytes): 6 full blocks of 8 are shared.
    assert.equal(prefixCache.hitBlocks, 2 * 6);
    assert.equal(prefixCache.hitTokens, 2 * 6 * 8);
    [first, ...later].forEach((r, i) =>
      assert.deepEqual(r.tokenIds, referenceGreedy(model, system + questions[i]!, 8), questions[i]),
    );
  } finally {
    await engine.close();
    model.dispose();
  }
});

test('streaming: events carry the text; cancelling (signal, cancel(), break) frees blocks at once', async () => {
  const model = featureModel(3);
  const engine = new InferenceEngine(model, tokenizer, { blockSize: 4, numBlocks: 256, maxBatch: 8, tokenBudget: 32 });
  try {
    const streamed = engine.submit('Once upon a time', greedy(12));
    let text = '';
    const ids: number[] = [];
    for await (const event of streamed) {
      text += event.text;
      ids.push(event.tokenId);
      assert.equal(event.logprob, undefined, 'no log-probabilities unless asked');
    }
    const result = await streamed.result;
    assert.equal(text, result.text);
    assert.deepEqual(ids, result.tokenIds);
    assert.ok(result.timeToFirstTokenMs !== null && result.timeToFirstTokenMs <= result.totalMs);
    assert.ok(engine.stats().timeToFirstTokenMs.mean !== null);

    const controller = new AbortController();
    const bySignal = engine.submit('abc', { ...greedy(10_000), signal: controller.signal });
    const byCall = engine.submit('def', greedy(10_000));
    const byBreak = engine.submit('ghi', greedy(10_000));
    let seen = 0;
    for await (const event of bySignal) {
      assert.equal(typeof event.tokenId, 'number');
      if (++seen === 3) {
        assert.ok(engine.stats().blocks.used > 0);
        controller.abort();
        byCall.cancel();
      }
    }
    assert.equal((await bySignal.result).finishReason, 'cancelled');
    assert.equal((await byCall.result).finishReason, 'cancelled');
    for await (const _ of byBreak) break;
    assert.equal((await byBreak.result).finishReason, 'cancelled');
    assert.equal(engine.stats().blocks.used, 0, 'cancelled requests hold no blocks');
    const already = new AbortController();
    already.abort();
    assert.equal((await engine.submit('x', { signal: already.signal }).result).finishReason, 'cancelled');
  } finally {
    await engine.close();
    model.dispose();
  }
});

test('per-request sampling: a seed reproduces tokens in one batch, log-probabilities when asked', async () => {
  const model = featureModel(4);
  const engine = new InferenceEngine(model, tokenizer, { blockSize: 8, numBlocks: 128, maxBatch: 8, tokenBudget: 64 });
  try {
    const params: GenerationParams = { temperature: 1.1, topK: 40, topP: 0.9, maxTokens: 16, ignoreEos: true };
    const [a, b, c] = await Promise.all([7, 7, 8].map((seed) => engine.submit('The sea', { ...params, seed }).result));
    assert.deepEqual(a!.tokenIds, b!.tokenIds, 'same seed, same tokens (in one batch)');
    assert.notDeepEqual(a!.tokenIds, c!.tokenIds);
    const withLogprobs = engine.submit('The sea', { ...greedy(6), logprobs: true, topLogprobs: 3 });
    for await (const event of withLogprobs) {
      assert.ok(event.logprob! <= 0);
      const top = event.topLogprobs!;
      assert.equal(top.length, 3);
      assert.equal(top[0]!.tokenId, event.tokenId, 'greedy picks the most likely token');
      assert.equal(top[0]!.logprob, event.logprob);
      assert.ok(top[0]!.logprob >= top[1]!.logprob && top[1]!.logprob >= top[2]!.logprob);
    }
  } finally {
    await engine.close();
    model.dispose();
  }
});

test('stop strings and the end-of-document token end requests; bad requests fail before queueing', async () => {
  const model = featureModel(5);
  const engine = new InferenceEngine(model, tokenizer, {
    blockSize: 4,
    numBlocks: 16,
    maxBatch: 2,
    tokenBudget: 8,
    maxQueue: 2,
  });
  try {
    const free = await engine.submit('Hello', greedy(20)).result;
    const stop = free.text.slice(5, 7);
    const stopped = await engine.submit('Hello', { ...greedy(20), stop: [stop] }).result;
    assert.equal(stopped.finishReason, 'stop');
    assert.equal(stopped.text, free.text.slice(0, free.text.indexOf(stop)));
    const eos = await engine.submit('Hello', { ...greedy(20), ignoreEos: false, stopTokenIds: [free.tokenIds[3]!] })
      .result;
    assert.equal(eos.finishReason, 'stop');
    assert.deepEqual(eos.tokenIds, free.tokenIds.slice(0, free.tokenIds.indexOf(free.tokenIds[3]!) + 1));

    assert.throws(() => engine.submit('x', { temperature: -1 }), /temperature must be/);
    assert.throws(() => engine.submit('x', { topP: 0 }), /topP must be/);
    assert.throws(() => engine.submit('x', { maxTokens: 1.5 }), /maxTokens must be/);
    assert.throws(() => engine.submit('x', { stop: [''] }), /stop strings/);
    assert.throws(() => engine.submit('x', { stopTokenIds: [9999] }), /stopTokenIds: 9999/);
    assert.throws(() => engine.submit(Int32Array.of(1, 300)), /prompt token 1 is 300/);
    assert.throws(
      () => engine.submit('x'.repeat(64)),
      /the prompt takes 65 positions, more than the 64 of the cache pool/,
    );
    const queued = [engine.submit('a', greedy(4)), engine.submit('b', greedy(4))];
    assert.throws(() => engine.submit('c', greedy(4)), QueueFullError);
    assert.throws(() => new InferenceEngine(model, tokenizer, { maxBatch: 8, tokenBudget: 4 }), /tokenBudget/);
    assert.throws(() => new InferenceEngine(model, tokenizer, { blockSize: 48 }), /blockSize must be a power of two/);
    assert.throws(() => new InferenceEngine(model, tokenizer, { memoryBytes: 100 }), /holds not one KV-cache block/);
    await Promise.all(queued.map((q) => q.result));
    // The token limit is capped to the pool: 60 positions of context + generated tokens, plus the last token.
    const long = await engine.submit('x'.repeat(59), greedy(1000)).result;
    assert.equal(long.finishReason, 'length');
    assert.equal(long.usage.completionTokens, 64 - 60 + 1);
  } finally {
    await engine.close();
    model.dispose();
  }
  assert.throws(() => engine.submit('x'), /closed/);
});

test('close cancels what is running, and the engine yields to the event loop between steps', async () => {
  const model = featureModel(6);
  const engine = new InferenceEngine(model, tokenizer, { blockSize: 4, numBlocks: 64, maxBatch: 2, tokenBudget: 8 });
  const stream = engine.submit('Tick', greedy(10_000));
  const seenSteps: number[] = [];
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    seenSteps.push(engine.stats().steps);
  }
  // Each turn of the event loop sees the engine a step or two further on: it never runs ahead without yielding.
  const advances = seenSteps.slice(1).map((n, i) => n - seenSteps[i]!);
  assert.ok(
    advances.every((d) => d >= 1 && d <= 2),
    `timers ran between steps: ${seenSteps}`,
  );
  await engine.close();
  assert.equal((await stream.result).finishReason, 'cancelled');
  assert.equal(engine.stats().blocks.used, 0);
  model.dispose();
});

test('decode steps replayed as graphs (CPU replay) give the same greedy and the same sampled tokens', async () => {
  const model = featureModel(7);
  const prompts = ['one', 'two two', 'three three three', 'four', 'five five'];
  const options = { blockSize: 4, numBlocks: 96, maxBatch: 8, tokenBudget: 32 };
  const run = async (graphsOnCpu: boolean, params: GenerationParams[]) => {
    const engine = new InferenceEngine(model, tokenizer, { ...options, graphsOnCpu });
    try {
      const results = await Promise.all(prompts.map((p, i) => engine.submit(p, params[i]!).result));
      const stats = engine.stats();
      return { ids: results.map((r) => r.tokenIds), graphs: stats.graphs, replays: stats.decodeReplays };
    } finally {
      await engine.close();
    }
  };
  try {
    const greedyParams = prompts.map((_, i) => greedy(10 + 3 * i));
    const withGraphs = await run(true, greedyParams);
    // Batches of 5, then 4, 3, 2, 1 as requests finish: buckets 8, 4, 2, 1 (and table widths).
    assert.ok(withGraphs.graphs >= 4, `graphs captured: ${withGraphs.graphs}`);
    // Every decode step after the prompts' first tokens replayed a graph, and the host's time between them is timed.
    const replays = withGraphs.replays!;
    assert.ok(replays.steps >= 10 + 3 * 4 - 2, `replayed steps: ${replays.steps}`);
    assert.ok(replays.waitMs > 0 && replays.hostGapMs !== null && replays.hostGapMs >= 0, JSON.stringify(replays));
    withGraphs.ids.forEach((ids, i) => assert.deepEqual(ids, referenceGreedy(model, prompts[i]!, 10 + 3 * i)));
    const sampling = prompts.map((_, i) => ({
      temperature: 0.9,
      topK: 20,
      seed: 100 + i,
      maxTokens: 12,
      ignoreEos: true,
    }));
    const eager = await run(false, sampling);
    assert.equal(eager.graphs, 0);
    assert.equal(eager.replays, null);
    assert.deepEqual((await run(true, sampling)).ids, eager.ids, 'seeds and draw counters reach the graph buffers');
  } finally {
    model.dispose();
  }
});

test('decode steps launched ahead of their tokens (overlapSteps) give the tokens of steps run one by one', async () => {
  const model = featureModel(9);
  const prompts = ['alpha', 'beta beta', 'gamma gamma gamma', 'delta', 'epsilon epsilon', 'zeta'];
  const run = async (overlapSteps: boolean, params: GenerationParams[], cancelAfter = Infinity) => {
    const engine = new InferenceEngine(model, tokenizer, {
      blockSize: 4,
      numBlocks: 96,
      maxBatch: 8,
      tokenBudget: 32,
      graphsOnCpu: true,
      overlapSteps,
    });
    try {
      const results = await Promise.all(
        prompts.map(async (p, i) => {
          const stream = engine.submit(p, params[i]!);
          let seen = 0;
          // The last request is cancelled by its reader mid-stream, while steps ahead run for it.
          if (i === prompts.length - 1) for await (const _ of stream) if (++seen === cancelAfter) stream.cancel();
          return stream.result;
        }),
      );
      const stats = engine.stats();
      assert.equal(stats.blocks.used, 0, 'every block released');
      return {
        results: results.map((r) => ({ ids: r.tokenIds, reason: r.finishReason })),
        replays: stats.decodeReplays!,
      };
    } finally {
      await engine.close();
    }
  };
  try {
    // Different lengths, a stop string and a stop token: sequences leave the batch while steps ahead run for them.
    const greedyParams: GenerationParams[] = prompts.map((_, i) => greedy(6 + 4 * i));
    const plain = await run(false, greedyParams);
    const stopString = tokenizer.decode(plain.results[3]!.ids.slice(4, 6));
    greedyParams[3] = { ...greedy(18), stop: [stopString] };
    greedyParams[4] = { ...greedy(22), stopTokenIds: [plain.results[4]!.ids[7]!] };
    const oneAtATime = await run(false, greedyParams, 5);
    const overlapped = await run(true, greedyParams, 5);
    assert.deepEqual(overlapped.results, oneAtATime.results);
    assert.deepEqual(
      oneAtATime.results.map((r) => r.reason),
      ['length', 'length', 'length', 'stop', 'stop', 'cancelled'],
    );
    assert.equal(oneAtATime.replays.overlapped, 0);
    assert.ok(overlapped.replays.overlapped > 0.5, `share of steps launched ahead: ${overlapped.replays.overlapped}`);
    oneAtATime.results
      .slice(0, 3)
      .forEach((r, i) => assert.deepEqual(r.ids, referenceGreedy(model, prompts[i]!, 6 + 4 * i)));
    // Seeded sampling: the steps ahead draw with the counters the host had not yet advanced.
    const sampled = prompts.map((_, i) => ({
      temperature: 0.8,
      topP: 0.9,
      seed: 7 + i,
      maxTokens: 9 + i,
      ignoreEos: true,
    }));
    assert.deepEqual((await run(true, sampled)).results, (await run(false, sampled)).results);
  } finally {
    model.dispose();
  }
});

test('penalties and min-p apply per request; a model without a paged forward runs by recomputation', async () => {
  const model = featureModel(8);
  const engine = new InferenceEngine(model, tokenizer, { blockSize: 8, numBlocks: 64, maxBatch: 4, tokenBudget: 32 });
  try {
    const [plain, penalized] = await Promise.all([
      engine.submit('aaaa', greedy(24)).result,
      engine.submit('aaaa', { ...greedy(24), presencePenalty: 1e6 }).result,
    ]);
    assert.ok(new Set(plain.tokenIds).size < plain.tokenIds.length, 'the tiny model repeats itself greedily');
    assert.equal(new Set(penalized.tokenIds).size, penalized.tokenIds.length, 'a huge presence penalty never repeats');
    // min-p 1 keeps only the most likely token: sampling at any temperature is greedy.
    const minP = await engine.submit('aaaa', { temperature: 5, minP: 1, seed: 3, maxTokens: 24, ignoreEos: true })
      .result;
    assert.deepEqual(minP.tokenIds, plain.tokenIds);
  } finally {
    await engine.close();
  }
  // The same model behind an interface the engine cannot page: every step recomputes the sequences.
  const opaque: LanguageModel = {
    vocabSize: model.vocabSize,
    namedParameters: () => model.namedParameters(),
    stateDict: () => model.stateDict(),
    loadStateDict: (s) => model.loadStateDict(s),
    forward: (tokens, o) => model.forward(tokens, o),
    train: () => model.train(),
    eval: () => model.eval(),
    dispose: () => {},
  };
  const recompute = new InferenceEngine(opaque, tokenizer, {
    numBlocks: 32,
    blockSize: 4,
    maxBatch: 2,
    tokenBudget: 8,
  });
  try {
    const results = await Promise.all(['ab', 'abc d'].map((p) => recompute.submit(p, greedy(10)).result));
    assert.equal(recompute.stats().paged, false);
    results.forEach((r, i) => assert.deepEqual(r.tokenIds, referenceGreedy(model, ['ab', 'abc d'][i]!, 10)));
  } finally {
    await recompute.close();
    model.dispose();
  }
});
