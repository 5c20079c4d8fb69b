// The port between the HTTP thread and the engine (src/serve/engine-link.ts ↔ engine-host.ts), both ends
// in this thread over a MessageChannel: a choice followed through the link gets exactly the tokens, text,
// log-probabilities and usage the engine gives the same request directly; refusals keep their kind;
// cancelling or aborting a replica frees the engine's blocks; a failed link ends what it follows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import '../../src/engine/index.js';
import { andromedaFamily } from '../../src/train/andromeda-adapter.js';
import { ByteTokenizer } from '../../src/data/tokenizer/byte.js';
import { InferenceEngine, type GenerationParams, type TokenEvent } from '../../src/inference/engine.js';
import type { GenerationStream } from '../../src/inference/generation-stream.js';
import { EngineHost } from '../../src/serve/engine-host.js';
import { EngineLink } from '../../src/serve/engine-link.js';
import { QueueFullError } from '../../src/serve/served-engine.js';
import { waitFor } from './helpers.js';

const tokenizer = new ByteTokenizer();

function linked(options: ConstructorParameters<typeof InferenceEngine>[2] = {}) {
  const config = andromedaFamily.presetConfig('tiny', tokenizer.vocabSize, {
    dim: 32,
    depth: 1,
    heads: 2,
    headDim: 32,
    maxSeqLen: 128,
  });
  const model = andromedaFamily.create(config, { seed: 3, device: 'cpu' });
  const engine = new InferenceEngine(model, tokenizer, { blockSize: 8, numBlocks: 64, maxBatch: 8, ...options });
  const { port1, port2 } = new MessageChannel();
  const host = new EngineHost(engine, port1);
  const link = new EngineLink(port2);
  return {
    engine,
    host,
    link,
    async close() {
      host.detach();
      port1.close();
      port2.close();
      await engine.close();
      model.dispose();
    },
  };
}

const contextOf = (text: string): Int32Array => Int32Array.from([tokenizer.eosId, ...tokenizer.encode(text)]);

/** Every event of a stream and its result. */
async function drain(
  stream: GenerationStream,
): Promise<{ events: TokenEvent[]; result: Awaited<GenerationStream['result']> }> {
  const events: TokenEvent[] = [];
  return new Promise((resolve) =>
    stream.listen({ token: (event) => events.push(event), end: (result) => resolve({ events, result }) }),
  );
}

test('through the link a request gets the tokens, text, logprobs and usage the engine gives it directly', async () => {
  const { engine, link, close } = linked();
  try {
    const params: GenerationParams[] = [
      { temperature: 0.9, seed: 7, maxTokens: 20, ignoreEos: true, logprobs: true, topLogprobs: 2 },
      { temperature: 0, maxTokens: 12, ignoreEos: true },
      { temperature: 1, seed: 11, maxTokens: 16, stop: ['e'] },
    ];
    const prompts = ['the white whale', 'call me', 'a longer prompt than the others, to be prefilled'];
    const choices = prompts.map((p, i) => ({ context: contextOf(p), params: { ...params[i]!, startWithEos: false } }));
    const viaLink = await Promise.all((await link.submitAll(choices)).map(drain));
    const direct = await Promise.all(choices.map((c) => drain(engine.submit(c.context, c.params))));
    for (let i = 0; i < choices.length; i++) {
      const [a, b] = [viaLink[i]!, direct[i]!];
      // Tokens and text exactly; log-probabilities to float32 rounding (the two runs batch differently).
      assert.deepEqual(
        a.events.map((e) => [e.tokenId, e.text, e.topLogprobs?.map((t) => t.tokenId)]),
        b.events.map((e) => [e.tokenId, e.text, e.topLogprobs?.map((t) => t.tokenId)]),
        `choice ${i}: events`,
      );
      a.events.forEach((e, t) => {
        const expected = [b.events[t]!.logprob, ...(b.events[t]!.topLogprobs ?? []).map((x) => x.logprob)];
        const got = [e.logprob, ...(e.topLogprobs ?? []).map((x) => x.logprob)];
        got.forEach((g, k) =>
          assert.ok(g === expected[k] || Math.abs(g! - expected[k]!) < 1e-4, `${g} vs ${expected[k]}`),
        );
      });
      assert.equal(a.result.text, b.result.text);
      assert.deepEqual(a.result.tokenIds, b.result.tokenIds);
      assert.equal(a.result.finishReason, b.result.finishReason);
      assert.deepEqual(a.result.usage, b.result.usage);
    }
    assert.ok(viaLink[0]!.events.every((e) => typeof e.logprob === 'number' && e.topLogprobs!.length === 2));
    assert.ok(viaLink[1]!.events.every((e) => e.logprob === undefined && e.topLogprobs === undefined));
    assert.equal(viaLink[1]!.result.tokenIds.length, 12);
  } finally {
    await close();
  }
});

test('refusals keep their kind: a full queue, a bad parameter; none of the choices is left queued', async () => {
  const { engine, link, close } = linked({ maxQueue: 2, maxBatch: 1 });
  try {
    const choice = { context: contextOf('abc'), params: { temperature: 0, maxTokens: 40, ignoreEos: true } };
    await assert.rejects(link.submitAll([choice, choice, choice, choice]), QueueFullError);
    await assert.rejects(link.submitAll([choice, { ...choice, params: { temperature: -1 } }]), (error: Error) => {
      assert.ok(error instanceof RangeError, `${error.name}: ${error.message}`);
      assert.match(error.message, /temperature/);
      return true;
    });
    // All-or-none: the refused requests' first choices were cancelled on the engine's side.
    assert.ok(await waitFor(() => engine.stats().running + engine.stats().waiting === 0, 2000));
  } finally {
    await close();
  }
});

test('cancelling a replica, or aborting its signal, ends the engine stream and frees its blocks', async () => {
  const { engine, host, link, close } = linked();
  try {
    const controller = new AbortController();
    const long = { temperature: 0, maxTokens: 100, ignoreEos: true };
    const [byCancel, bySignal] = await link.submitAll([
      { context: contextOf('first'), params: long },
      { context: contextOf('second'), params: { ...long, signal: controller.signal } },
    ]);
    const ends = [drain(byCancel!), drain(bySignal!)];
    assert.ok(await waitFor(() => engine.stats().running === 2 && engine.stats().blocks.used > 0, 2000));
    byCancel!.cancel();
    controller.abort();
    const [a, b] = await Promise.all(ends);
    assert.equal(a!.result.finishReason, 'cancelled');
    assert.equal(b!.result.finishReason, 'cancelled');
    assert.ok(a!.result.tokenIds.length < 100 && b!.result.tokenIds.length < 100);
    assert.ok(await waitFor(() => engine.stats().blocks.used === 0, 2000), 'blocks freed');
    assert.equal(host.openStreams, 0);
  } finally {
    await close();
  }
});

test('a failed link ends the streams it follows with the error, and refuses further requests', async () => {
  const { link, close } = linked();
  try {
    const [stream] = await link.submitAll([
      { context: contextOf('x'), params: { temperature: 0, maxTokens: 100, ignoreEos: true } },
    ]);
    const ended = drain(stream!);
    link.fail(new Error('the engine thread is gone'));
    const { result } = await ended;
    assert.equal(result.finishReason, 'error');
    assert.equal(result.error?.message, 'the engine thread is gone');
    await assert.rejects(link.stats(), /the engine thread is gone/);
    await assert.rejects(link.submitAll([{ context: contextOf('y'), params: {} }]), /the engine thread is gone/);
  } finally {
    await close();
  }
});

test('stats come from the engine', async () => {
  const { engine, link, close } = linked();
  try {
    const stats = await link.stats();
    assert.deepEqual(stats.blocks, engine.stats().blocks);
    assert.equal(stats.paged, engine.stats().paged);
  } finally {
    await close();
  }
});
