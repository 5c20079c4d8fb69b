import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { getEngine } from '../../src/engine/index.js';
import { narrow } from '../../src/ops/layout.js';
import { Andromeda } from '../../src/model/andromeda.js';
import type { AndromedaForwardOptions } from '../../src/model/forward-options.js';
import type { AndromedaConfigInput } from '../../src/model/config.js';
import { presetInput } from '../../src/model/presets.js';
import { deepnormGain } from '../../src/model/init.js';
import { StateDictError } from '../../src/nn/module.js';
import { maxAbsDiff, randomTokens, relativeError, values } from './helpers.js';

const cpu = getEngine('cpu');
const fusedAvailable = typeof cpu.attentionForward === 'function';
const paths: ('reference' | 'fused')[] = fusedAvailable ? ['reference', 'fused'] : ['reference'];
const tiny = presetInput('tiny');
const tokensOf = (ids: Int32Array, batch: number) => Tensor.fromArray(ids, [batch, ids.length / batch], 'int32');

/** Runs fn, then checks that every tensor it made (outside the model) was freed. */
function withoutLeaks<T>(fn: () => T): T {
  const before = cpu.memoryStats().allocated;
  const result = fn();
  assert.equal(cpu.memoryStats().allocated, before, 'tensors leaked');
  return result;
}

function logitsOf(model: Andromeda, ids: Int32Array, batch: number, o: AndromedaForwardOptions = {}): Float64Array {
  return tidy(() => noGrad(() => values(model.forward(tokensOf(ids, batch), o))));
}

for (const path of paths) {
  test(`causality: logits at a position do not change when the sequence is extended (${path} attention)`, () => {
    const model = new Andromeda(tiny, { seed: 1 });
    withoutLeaks(() => {
      const ids = randomTokens(48, 257, 5);
      const full = logitsOf(model, ids, 1, { attentionImplementation: path });
      const prefix = logitsOf(model, ids.subarray(0, 20), 1, { attentionImplementation: path });
      assert.ok(maxAbsDiff(prefix, full.subarray(0, prefix.length)) < 1e-5);
    });
    model.dispose();
  });

  test(`packed documents: the second document's logits equal running it alone (${path} attention)`, () => {
    const model = new Andromeda({ ...tiny, qkNorm: true, qkNormDimScale: true }, { seed: 2 });
    withoutLeaks(() => {
      const first = randomTokens(13, 257, 7),
        second = randomTokens(19, 257, 8);
      const packed = Int32Array.from([...first, ...second]);
      const segmentIds = Int32Array.from(packed, (_, i) => (i < first.length ? 0 : 1));
      const together = logitsOf(model, packed, 1, { segmentIds, attentionImplementation: path });
      const alone = logitsOf(model, second, 1, { attentionImplementation: path });
      const firstAlone = logitsOf(model, first, 1, { attentionImplementation: path });
      const vocab = 257;
      assert.ok(maxAbsDiff(together.subarray(first.length * vocab), alone) < 1e-5);
      assert.ok(maxAbsDiff(together.subarray(0, first.length * vocab), firstAlone) < 1e-5);
      // Explicit positions that reset give the same result as positions derived from the segments.
      const positions = Int32Array.from(packed, (_, i) => (i < first.length ? i : i - first.length));
      assert.ok(
        maxAbsDiff(logitsOf(model, packed, 1, { segmentIds, positions, attentionImplementation: path }), together) <
          1e-6,
      );
    });
    model.dispose();
  });
}

test('KV cache: greedy decoding with the cache gives the same logits and tokens as without', () => {
  for (const variant of [
    tiny,
    { ...tiny, deepnorm: true, qkNorm: true, qkNormDimScale: true, shiftTokens: 2, kvHeads: 4 },
  ] as AndromedaConfigInput[]) {
    const model = new Andromeda(variant, { seed: 3 });
    withoutLeaks(() => {
      const prompt = Array.from(randomTokens(6, 257, 11));
      const steps = 10,
        vocab = 257;
      const argmax = (row: ArrayLike<number>) => {
        let best = 0;
        for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
        return best;
      };
      // Uncached: the whole sequence every step.
      const uncached: number[] = [...prompt];
      const uncachedLogits: Float64Array[] = [];
      for (let s = 0; s < steps; s++) {
        const all = logitsOf(model, Int32Array.from(uncached), 1);
        const last = all.subarray(all.length - vocab);
        uncachedLogits.push(Float64Array.from(last));
        uncached.push(argmax(last));
      }
      // Cached: prefill the prompt (in two chunks), then one token per step.
      const cache = model.createKVCache(1, { capacity: 4 });
      const cached: number[] = [...prompt];
      let last: ArrayLike<number> = new Float64Array(0);
      for (const chunk of [prompt.slice(0, 4), prompt.slice(4)]) {
        const l = logitsOf(model, Int32Array.from(chunk), 1, { kvCache: cache });
        last = l.subarray(l.length - vocab);
      }
      for (let s = 0; s < steps; s++) {
        assert.ok(maxAbsDiff(last, uncachedLogits[s]!) < 1e-4, `step ${s}: ${maxAbsDiff(last, uncachedLogits[s]!)}`);
        const next = argmax(last);
        cached.push(next);
        last = logitsOf(model, Int32Array.of(next), 1, { kvCache: cache });
      }
      assert.deepEqual(cached, uncached);
      assert.equal(cache.length, prompt.length + steps);
      cache.dispose();
    });
    model.dispose();
  }
});

test(
  "logits: 'last' gives each row's last-position logits, with and without a KV cache, for pre- and " + 'post-norm',
  () => {
    for (const variant of [tiny, { ...tiny, deepnorm: true }] as AndromedaConfigInput[]) {
      const model = new Andromeda(variant, { seed: 4 });
      withoutLeaks(() => {
        const vocab = 257,
          batch = 2,
          n = 9;
        const ids = randomTokens(batch * n, vocab, 21);
        const all = logitsOf(model, ids, batch);
        const last = tidy(() =>
          noGrad(() => {
            const out = model.forward(tokensOf(ids, batch), { logits: 'last' });
            assert.deepEqual(out.shape, [batch, 1, vocab]);
            return values(out);
          }),
        );
        for (let b = 0; b < batch; b++) {
          const expected = all.subarray(((b + 1) * n - 1) * vocab, (b + 1) * n * vocab);
          assert.ok(maxAbsDiff(last.subarray(b * vocab, (b + 1) * vocab), expected) < 1e-5, `row ${b}`);
        }
        const cache = model.createKVCache(1, { capacity: 16 });
        const first = logitsOf(model, ids.subarray(0, 5), 1, { kvCache: cache, logits: 'last' });
        const second = logitsOf(model, ids.subarray(5, n), 1, { kvCache: cache, logits: 'last' });
        assert.equal(first.length, vocab);
        assert.ok(maxAbsDiff(second, all.subarray((n - 1) * vocab, n * vocab)) < 1e-4);
        cache.dispose();
        assert.throws(
          () => tidy(() => model.forward(tokensOf(ids, batch), { logits: 'first' as 'last' })),
          /logits must be 'all' or 'last'/,
        );
      });
      model.dispose();
    }
  },
);

test(
  'activation checkpointing: ' + 'same loss and gradients as without it, with less memory held for the backward pass',
  () => {
    const config: AndromedaConfigInput = { ...tiny, depth: 4, deepnorm: true, qkNorm: true, qkNormDimScale: true };
    const ids = randomTokens(2 * 64, 257, 31);
    const run = (checkpointBlocks: boolean) => {
      const model = new Andromeda(config, { seed: 9 });
      const before = cpu.memoryStats().allocated;
      let held = 0;
      const loss = tidy(() => {
        const l = model.loss(tokensOf(ids, 2), { activationCheckpointing: checkpointBlocks });
        held = cpu.memoryStats().allocated - before;
        l.backward();
        return l.item();
      });
      const grads = model.parameters().map((p) => values(p.grad!));
      model.dispose();
      return { loss, grads, held };
    };
    const plain = run(false),
      checkpointed = run(true);
    assert.equal(checkpointed.loss, plain.loss);
    plain.grads.forEach((g, i) =>
      assert.ok(
        maxAbsDiff(g, checkpointed.grads[i]!) < 1e-6,
        `parameter ${i}: ${maxAbsDiff(g, checkpointed.grads[i]!)}`,
      ),
    );
    assert.ok(
      checkpointed.held < plain.held / 2,
      `held for backward: ${checkpointed.held} bytes checkpointed vs ${plain.held}`,
    );
  },
);

const variants: [string, AndromedaConfigInput][] = [
  ['parallel blocks', { ...tiny, parallelBlocks: true, scaleResidual: true }],
  ['tied embeddings', { ...tiny, tiedEmbeddings: true }],
  ['RMSNorm', { ...tiny, norm: 'rmsnorm' }],
  ['SwiGLU', { ...tiny, ffActivation: 'swiglu', ffMult: 8 / 3 }],
  ['GEGLU', { ...tiny, ffActivation: 'geglu' }],
  ['grouped-query attention', { ...tiny, kvHeads: 2 }],
  ['multi-head attention with qk-norm', { ...tiny, kvHeads: 4, qkNorm: true }],
  ['post-norm (DeepNorm)', { ...tiny, deepnorm: true }],
  ['rotary interpolation', { ...tiny, rotary: { xpos: true, interpolationFactor: 4 } }],
  ['NTK base rescale', { ...tiny, rotary: { xpos: true, ntkBaseRescale: 8 } }],
  ['YaRN', { ...tiny, rotary: { yarn: { factor: 8, originalMaxSeqLen: 64 } } }],
  ['no rotary, no ALiBi, no token shift', { ...tiny, rotary: null, alibiHeads: 0, shiftTokens: 0 }],
];

for (const [name, config] of variants) {
  test(`option ${name}: forward, loss and gradients are finite and reach every parameter; paths agree`, () => {
    const model = new Andromeda(config, { seed: 4 });
    withoutLeaks(() => {
      const ids = randomTokens(2 * 24, model.config.vocabSize, 13);
      const results = paths.map((path) =>
        tidy(() => {
          const tokens = tokensOf(ids, 2);
          const loss = model.loss(tokens, { attentionImplementation: path });
          loss.backward();
          const grads = model.namedParameters().map(([n, t]) => {
            assert.ok(t.grad, `${n} has no gradient`);
            const g = values(t.grad);
            assert.ok(g.every(Number.isFinite), `${n} gradient is not finite`);
            return g;
          });
          model.zeroGrad();
          return { loss: loss.item(), grads };
        }),
      );
      assert.ok(Number.isFinite(results[0]!.loss) && results[0]!.loss > 0);
      assert.ok(
        Math.abs(results[0]!.loss - Math.log(model.config.vocabSize)) < 2,
        'an untrained model is near uniform',
      );
      if (results.length === 2) {
        assert.ok(Math.abs(results[0]!.loss - results[1]!.loss) < 1e-5);
        results[0]!.grads.forEach((g, i) => assert.ok(relativeError(results[1]!.grads[i]!, g) < 1e-3));
      }
    });
    model.dispose();
  });
}

test('loss with explicit targets (packed training rows) ignores -100 and matches the shifted form', () => {
  const model = new Andromeda(tiny, { seed: 5 });
  withoutLeaks(() =>
    tidy(() => {
      const ids = randomTokens(2 * 16, 257, 17);
      const tokens = tokensOf(ids, 2);
      const shifted = model.loss(tokens).item();
      const inputs = narrow(tokens, 1, 0, 15).contiguous();
      const targets = narrow(tokens, 1, 1, 15).contiguous();
      assert.ok(Math.abs(model.loss(inputs, { targets }).item() - shifted) < 1e-6);
      const partial = Int32Array.from(targets.toArray(), (t, i) => (i % 15 === 0 ? -100 : t));
      const masked = model.loss(inputs, { targets: Tensor.fromArray(partial, [2, 15], 'int32') }).item();
      assert.ok(Number.isFinite(masked) && masked !== shifted);
    }),
  );
  model.dispose();
});

test(
  'initialisation follows x-transformers 1.20 (embedding kaiming, DeepNorm xavier gains, default Linear ' +
    'elsewhere)',
  () => {
    const std = (t: Tensor) => {
      const v = values(t);
      const m = v.reduce((a, b) => a + b, 0) / v.length;
      return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length);
    };
    const model = new Andromeda(
      { vocabSize: 512, dim: 256, depth: 4, heads: 4, headDim: 64, deepnorm: true },
      { seed: 6 },
    );
    const beta = deepnormGain(4);
    const close = (a: number, b: number) => Math.abs(a - b) < 0.05 * b;
    assert.ok(close(std(model.embedding.weight), Math.sqrt(2 / 256)));
    const block = model.blocks.at(0);
    assert.ok(close(std(block.attention.query.weight), Math.sqrt(2 / (256 + 256))));
    assert.ok(close(std(block.attention.value.weight), beta * Math.sqrt(2 / (256 + 256))));
    assert.ok(close(std(block.feedForward.input.weight), beta * Math.sqrt(2 / (256 + 1024))));
    assert.ok(values(block.feedForward.input.bias!).every((b) => b === 0));
    const logits = values(model.logits!.weight);
    assert.ok(logits.every((w) => Math.abs(w) <= 1 / 16) && close(std(model.logits!.weight), 1 / 16 / Math.sqrt(3)));
    model.dispose();
    // Same seed, same model.
    const a = new Andromeda(tiny, { seed: 9 }),
      b = new Andromeda(tiny, { seed: 9 });
    assert.deepEqual(values(a.blocks.at(1).attention.key.weight), values(b.blocks.at(1).attention.key.weight));
    a.dispose();
    b.dispose();
  },
);

test('Module: stateDict/loadStateDict list missing, unexpected and mis-shaped names; to(dtype) keeps names', () => {
  const model = new Andromeda(tiny, { seed: 7 });
  const other = new Andromeda({ ...tiny, dim: 64 }, { seed: 7 });
  withoutLeaks(() => {
    const state = new Map(model.stateDict());
    state.delete('finalNorm.bias');
    state.set('extra.weight', model.embedding.weight);
    assert.throws(
      () => model.loadStateDict(state),
      (e: Error) =>
        e instanceof StateDictError &&
        /missing \(1\): finalNorm\.bias/.test(e.message) &&
        /unexpected \(1\): extra\.weight/.test(e.message),
    );
    assert.throws(
      () => model.loadStateDict(other.stateDict()),
      /wrong shape \(\d+\): embedding\.weight: model \[257, 128\], given \[257, 64\]/,
    );
    const copy = new Andromeda(tiny, { seed: 8 });
    copy.loadStateDict(model.stateDict());
    const ids = randomTokens(10, 257, 3);
    assert.deepEqual(logitsOf(copy, ids, 1), logitsOf(model, ids, 1));
    copy.to('float64');
    assert.equal(copy.embedding.weight.dtype, 'float64');
    assert.equal(copy.embedding.weight.name, 'embedding.weight');
    assert.ok(maxAbsDiff(logitsOf(copy, ids, 1), logitsOf(model, ids, 1)) < 1e-4);
    copy.dispose();
  });
  model.dispose();
  other.dispose();
});
