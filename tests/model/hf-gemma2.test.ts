// Gemma 2 beyond Gemma: its config mapping and refusals, the attention soft-cap of the reference attention path,
// the final logit soft-cap in the logits and in the chunked training loss, the four norms per layer and the window
// on alternate layers. The transformers parity of the whole model is the gemma2 fixture's (hf-import.test.ts), its
// decoding paths hf-generation.test.ts's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/engine/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Generator } from '../../src/tensor/random.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { attention } from '../../src/ops/attention.js';
import { crossEntropy } from '../../src/ops/nn.js';
import { linear } from '../../src/ops/matmul.js';
import { mul, tanh } from '../../src/ops/elementwise.js';
import { chunkedLinearCrossEntropy } from '../../src/ops/chunked-cross-entropy.js';
import { Andromeda } from '../../src/model/andromeda.js';
import { SandwichNormBlock } from '../../src/model/block.js';
import { pagedAttentionUnsupported } from '../../src/model/attention.js';
import { cudaFusedAttentionUnsupported as cuda } from '../../src/engine/cuda-shapes.js';
import { layerWindow, parameterCountOf, resolveConfig, type AndromedaConfigInput } from '../../src/model/config.js';
import { countParameters } from '../../src/model/parameter-shapes.js';
import { configFromHuggingFace } from '../../src/model/hf-import.js';
import { AndromedaLM } from '../../src/train/andromeda-adapter.js';
import { batchLoss } from '../../src/train/next-token-loss.js';
import { hasPagedForward } from '../../src/inference/runners.js';
import { gradcheck, randomValues } from '../helpers/gradcheck.js';
import { maxAbsDiff, values } from './helpers.js';

const gemma2 = {
  architectures: ['Gemma2ForCausalLM'],
  vocab_size: 10,
  hidden_size: 32,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 4,
  intermediate_size: 16,
};

test("Gemma 2's config: transformers' defaults (caps 50 and 30, scalar 256, window 4096 on even layers)", () => {
  const { input, tiedEmbeddings } = configFromHuggingFace(gemma2);
  assert.equal(tiedEmbeddings, true);
  assert.equal(input.headDim, 256);
  assert.equal(input.ffActivation, 'geglu');
  assert.equal(input.geluApproximation, 'tanh');
  assert.equal(input.normWeightOffset, 1);
  assert.equal(input.embeddingScale, Math.sqrt(32));
  assert.equal(input.attentionSoftCap, 50);
  assert.equal(input.logitSoftCap, 30);
  assert.equal(input.attentionScale, 256 ** -0.5);
  assert.equal(input.slidingWindow, 4096);
  assert.equal(input.slidingWindowLayers, 'even');
  assert.equal(input.sandwichNorm, true);
  const given = configFromHuggingFace({
    ...gemma2,
    head_dim: 8,
    query_pre_attn_scalar: 144,
    attn_logit_softcapping: null,
    final_logit_softcapping: 12.5,
    sliding_window: null,
    layer_types: ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'],
    // Gemma2MLP reads hidden_activation alone: a stray hidden_act does not count.
    hidden_act: 'silu',
  }).input;
  assert.equal(given.attentionScale, 1 / 12);
  assert.equal(given.attentionSoftCap, null);
  assert.equal(given.logitSoftCap, 12.5);
  assert.equal(given.slidingWindow, null);
  const c = resolveConfig({ ...configFromHuggingFace({ ...gemma2, head_dim: 8 }).input, slidingWindow: 6 });
  assert.deepEqual(
    [0, 1, 2, 3].map((layer) => layerWindow(c, layer)),
    [6, null, 6, null],
  );
});

test('Gemma 2 settings outside what is supported are named, together', () => {
  assert.throws(
    () =>
      configFromHuggingFace(
        {
          ...gemma2,
          use_bidirectional_attention: true,
          layer_types: ['full_attention', 'sliding_attention', 'full_attention', 'sliding_attention'],
          hidden_activation: 'gelu',
          attn_logit_softcapping: 0,
          query_pre_attn_scalar: -4,
        },
        'g2/config.json',
      ),
    (e: Error) =>
      e.message.startsWith('g2/config.json: cannot import this Gemma2ForCausalLM:') &&
      /use_bidirectional_attention = true \(attention to later tokens\) is not supported/.test(e.message) &&
      /layer_types \["full_attention",.*\] is not supported: the sliding window applies to every other layer/.test(
        e.message,
      ) &&
      /hidden_activation "gelu" is not supported \(Gemma 2's MLP is GeGLU with gelu_pytorch_tanh\)/.test(e.message) &&
      /attn_logit_softcapping must be positive \(or null for none\), got 0/.test(e.message) &&
      /query_pre_attn_scalar must be positive, got -4/.test(e.message),
  );
  assert.throws(
    () => configFromHuggingFace({ ...gemma2, layer_types: ['sliding_attention', 'full_attention'] }),
    /layer_types .* is not supported/,
  );
});

const small: AndromedaConfigInput = {
  vocabSize: 13,
  dim: 8,
  depth: 3,
  heads: 2,
  kvHeads: 1,
  headDim: 4,
  ffInnerDim: 12,
  ffActivation: 'geglu',
  geluApproximation: 'tanh',
  feedForwardBias: false,
  norm: 'rmsnorm',
  normWeightOffset: 1,
  tiedEmbeddings: true,
  rotary: { dim: 4 },
  sandwichNorm: true,
  attentionScale: 0.3,
  attentionSoftCap: 1.5,
  logitSoftCap: 2,
  slidingWindow: 3,
  slidingWindowLayers: 'even',
};

test('the Gemma 2 options are validated and count their parameters as the model creates them', () => {
  const config = resolveConfig(small);
  assert.equal(parameterCountOf(config), countParameters(config));
  const model = new Andromeda(config, { dtype: 'float64' });
  try {
    assert.ok(model.blocks.at(0) instanceof SandwichNormBlock);
    assert.equal(
      [...model.namedParameters()].reduce((n, [, p]) => n + p.size, 0),
      parameterCountOf(config),
    );
  } finally {
    model.dispose();
  }
  assert.throws(
    () =>
      resolveConfig({
        ...small,
        slidingWindowLayers: 'odd' as 'even',
        attentionSoftCap: 0,
        logitSoftCap: -1,
        attentionScale: Number.NaN,
      }),
    (e: Error) =>
      /slidingWindowLayers must be 'all' or 'even', got "odd"/.test(e.message) &&
      /attentionSoftCap must be a positive number \(or null\), got 0/.test(e.message) &&
      /logitSoftCap must be a positive number \(or null\), got -1/.test(e.message) &&
      /attentionScale must be a positive number \(or null\), got null/.test(e.message),
  );
  assert.throws(
    () => resolveConfig({ ...small, deepnorm: true, normPosition: undefined, normWeightOffset: 0 }),
    /sandwichNorm norms the branch outputs of sequential pre-norm blocks/,
  );
  assert.throws(
    () => resolveConfig({ ...small, attentionScale: 0.5, qkNorm: true }),
    /attentionScale replaces headDim\^-0.5; with qkNorm the scale is qkNormScale/,
  );
});

test("the soft-cap is in the CPU's paged kernel, not in CUDA's: on the CPU such a model is paged", () => {
  const config = resolveConfig({ ...small, slidingWindow: null });
  assert.equal(pagedAttentionUnsupported(config), null);
  const lm = new AndromedaLM(new Andromeda(config));
  try {
    assert.equal(hasPagedForward(lm), true);
  } finally {
    lm.model.dispose();
  }
  const shape = { kernel: 'paged', heads: 4, headDim: 64, rotaryDim: 16, alibi: false } as const;
  assert.equal(cuda(shape), null);
  assert.match(cuda({ ...shape, softCap: true })!, /soft-capping/);
  assert.match(cuda({ ...shape, window: true })!, /sliding window/);
});

/**
 * The capped attention written out: scores = cap · tanh(scale · q·k / cap), then the causal mask and the window
 * (query i sees keys i − W < j ≤ i), softmax, · v. q [heads, n, d] and k, v [kvHeads, n, d], head h reading
 * KV head h mod kvHeads.
 */
function cappedAttention(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  [heads, kvHeads, n, d]: number[],
  scale: number,
  cap: number,
  window: number,
): Float64Array {
  const out = new Float64Array(heads * n * d);
  for (let h = 0; h < heads; h++) {
    const g = h % kvHeads;
    for (let i = 0; i < n; i++) {
      const weights: number[] = [];
      for (let j = 0; j < n; j++) {
        if (j > i || i - j >= window) {
          weights.push(0);
          continue;
        }
        let dot = 0;
        for (let x = 0; x < d; x++) dot += q[(h * n + i) * d + x]! * k[(g * n + j) * d + x]!;
        weights.push(Math.exp(cap * Math.tanh((scale * dot) / cap)));
      }
      const total = weights.reduce((a, b) => a + b, 0);
      for (let j = 0; j < n; j++)
        for (let x = 0; x < d; x++) out[(h * n + i) * d + x]! += (weights[j]! / total) * v[(g * n + j) * d + x]!;
    }
  }
  return out;
}

test('attention soft-cap: cap · tanh(scores / cap) before the masks, on the reference path only', () => {
  const [heads, kvHeads, n, d] = [2, 1, 7, 4];
  const g = new Generator(5);
  // Scores of several units: a cap of 1.5 bends them (uncapped, the result differs by far more than the bound).
  const qv = randomValues([heads, n, d], g, 2);
  const kv = randomValues([kvHeads, n, d], g, 2);
  const vv = randomValues([kvHeads, n, d], g);
  const [scale, cap, window] = [0.5, 1.5, 3];
  const expected = cappedAttention(qv, kv, vv, [heads, kvHeads, n, d], scale, cap, window);
  const uncapped = cappedAttention(qv, kv, vv, [heads, kvHeads, n, d], scale, 1e9, window);
  assert.ok(maxAbsDiff(expected, uncapped) > 1e-2, 'the cap changes this attention');
  const got = noGrad(() =>
    tidy(() => {
      const q = Tensor.fromArray(qv, [1, heads, n, d], 'float64');
      const k = Tensor.fromArray(kv, [1, kvHeads, n, d], 'float64');
      const v = Tensor.fromArray(vv, [1, kvHeads, n, d], 'float64');
      return values(attention(q, k, v, { scale, softCap: cap, window }));
    }),
  );
  assert.ok(maxAbsDiff(got, expected) < 1e-12, `max |diff| ${maxAbsDiff(got, expected)}`);
  tidy(() => {
    const q = Tensor.fromArray(qv, [1, heads, n, d], 'float32');
    const k = Tensor.fromArray(kv, [1, kvHeads, n, d], 'float32');
    assert.throws(
      () => attention(q, k, k, { scale, softCap: cap, implementation: 'fused' }),
      /the fused kernels have no logit soft-cap; use the reference implementation/,
    );
    assert.throws(() => attention(q, k, k, { scale, softCap: -2 }), /logit soft-cap -2 must be a positive number/);
    // 'auto' takes the reference path for a capped float32 attention too.
    const capped = values(attention(q, k, k, { scale, softCap: cap }));
    const plain = values(attention(q, k, k, { scale }));
    assert.ok(maxAbsDiff(capped, plain) > 1e-3);
  });
  gradcheck(
    'capped attention',
    (q, k, v) => attention(q!, k!, v!, { scale, softCap: cap, window }),
    [{ shape: [1, heads, n, d] }, { shape: [1, kvHeads, n, d] }, { shape: [1, kvHeads, n, d] }],
    { scale: 2 },
  );
});

const rows = 7,
  dim = 5,
  vocab = 11;
const targetValues = [3, 0, -100, 10, 7, -100, 1];

/** cap · tanh(logits / cap) composed from ordinary ops. */
const capped = (logits: Tensor, cap: number): Tensor => mul(tanh(mul(logits, 1 / cap)), cap);

test('chunked loss with a logit soft-cap: gradients match finite differences and the composed ops', () => {
  for (const chunkRows of [1, 3, 64]) {
    const targets = Tensor.fromArray(targetValues, [rows], 'int32');
    gradcheck(
      `chunked CE, soft-cap, blocks of ${chunkRows}`,
      (h, w, b) => chunkedLinearCrossEntropy(h!, w!, b!, targets, { chunkRows, softCap: 1.5 }),
      [{ shape: [rows, dim] }, { shape: [vocab, dim] }, { shape: [vocab] }],
      { scale: 2 },
    );
    targets.dispose();
  }
  const gen = new Generator(7);
  const h0 = randomValues([rows, dim], gen, 2);
  const w0 = randomValues([vocab, dim], gen);
  const run = (how: 'chunked' | 'composed' | 'uncapped') =>
    tidy(() => {
      const h = Tensor.fromArray(h0, [rows, dim], 'float32').requireGrad();
      const w = Tensor.fromArray(w0, [vocab, dim], 'float32').requireGrad();
      const targets = Tensor.fromArray(targetValues, [rows], 'int32');
      const loss =
        how === 'chunked'
          ? chunkedLinearCrossEntropy(h, w, null, targets, { chunkRows: 3, softCap: 1.5 })
          : crossEntropy(how === 'composed' ? capped(linear(h, w), 1.5) : linear(h, w), targets);
      loss.backward();
      return [values(loss), values(h.grad!), values(w.grad!)];
    });
  const [chunked, composed, uncapped] = [run('chunked'), run('composed'), run('uncapped')];
  for (const [i, name] of ['loss', 'd hidden', 'd weight'].entries()) {
    assert.ok(maxAbsDiff(chunked[i]!, composed[i]!) < 1e-5, `${name}: chunked vs composed`);
    assert.ok(maxAbsDiff(chunked[i]!, uncapped[i]!) > 1e-2, `${name}: the cap matters here`);
  }
  tidy(() => {
    const h = Tensor.fromArray(h0, [rows, dim], 'float32');
    const w = Tensor.fromArray(w0, [vocab, dim], 'float32');
    const targets = Tensor.fromArray(targetValues, [rows], 'int32');
    assert.throws(
      () => chunkedLinearCrossEntropy(h, w, null, targets, { softCap: 0 }),
      /softCap must be a positive number \(or null\), got 0/,
    );
  });
});

test('a Gemma 2 model: logits capped, and the chunked training loss equals the full one with gradients', () => {
  const model = new Andromeda(small, { dtype: 'float64', seed: 3 });
  const lm = new AndromedaLM(model);
  try {
    const tokens = Array.from({ length: 18 }, (_, i) => (i * 5 + 1) % small.vocabSize);
    const logits = noGrad(() => tidy(() => values(model.forward(Tensor.fromArray(tokens, [2, 9], 'int32')))));
    assert.ok(logits.every((v) => Math.abs(v) < 2));
    const targets = tokens.map((t, i) => (i % 9 === 8 ? -100 : tokens[i + 1]!));
    const run = (loss: 'chunked' | 'full') =>
      tidy(() => {
        model.zeroGrad();
        const inputs = Tensor.fromArray(tokens, [2, 9], 'int32');
        const t = Tensor.fromArray(targets, [2, 9], 'int32');
        const value = batchLoss(lm, { inputs, targets: t }, 'mean', { loss, chunkRows: 4 });
        value.backward();
        return [values(value), ...[...model.parameters()].map((p) => values(p.grad!))];
      });
    const [chunked, full] = [run('chunked'), run('full')];
    assert.equal(chunked.length, full.length);
    chunked.forEach((c, i) => assert.ok(maxAbsDiff(c, full[i]!) < 1e-12, `tensor ${i}: chunked vs full`));
  } finally {
    model.dispose();
  }
});
