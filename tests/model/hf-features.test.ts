// The model options Phi-3 and Gemma brought (LongRoPE, the RMS norm weight offset, the embedding scale, the tanh
// GELU), each against values derived by hand or by PyTorch, and the config mapping and refusals of both families.
// Their transformers parity is in hf-import.test.ts, their decoding paths in hf-generation.test.ts.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { Andromeda } from '../../src/model/andromeda.js';
import { tanhGelu } from '../../src/model/feed-forward.js';
import { sum } from '../../src/ops/reduce.js';
import { OffsetRMSNorm } from '../../src/model/norm.js';
import { parameterCountOf, resolveConfig, type AndromedaConfigInput } from '../../src/model/config.js';
import { countParameters } from '../../src/model/parameter-shapes.js';
import { rotaryForKeys, rotarySettings } from '../../src/model/rotary.js';
import { configFromHuggingFace, importHuggingFace } from '../../src/model/hf-import.js';
import { loadCheckpoint } from '../../src/model/weights-file.js';
import { spawnSync } from 'node:child_process';
import { relativeError, values } from './helpers.js';

const HF_FIXTURES = fileURLToPath(new URL('../../../tests/fixtures/hf/', import.meta.url));
const made: string[] = [];
after(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

const phi3 = {
  architectures: ['Phi3ForCausalLM'],
  vocab_size: 10,
  hidden_size: 32,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 1,
  intermediate_size: 16,
  max_position_embeddings: 128,
  original_max_position_embeddings: 32,
};
const longrope = { rope_type: 'longrope', short_factor: [1, 1.5, 2, 3], long_factor: [1, 2, 4, 8] };
const gemma = {
  architectures: ['GemmaForCausalLM'],
  vocab_size: 10,
  hidden_size: 32,
  num_attention_heads: 4,
  num_key_value_heads: 1,
  num_hidden_layers: 1,
  intermediate_size: 16,
};

test('LongRoPE: the short factors up to the original length, the long ones beyond, and the attention factor', () => {
  const { input } = configFromHuggingFace({ ...phi3, rope_scaling: longrope });
  const settings = rotarySettings(resolveConfig(input))!;
  // head_dim 8: base^(2i/8) = 1, 10, 100, 1000; factor 128/32 = 4 gives sqrt(1 + ln 4 / ln 32).
  const expected = (factors: number[]) => factors.map((f, i) => Math.fround(1 / (f * 10 ** i)));
  const close = (actual: ArrayLike<number>, wanted: number[], what: string) =>
    wanted.forEach((w, i) =>
      assert.ok(Math.abs(actual[i]! - w) <= 2.5e-7 * w, `${what} frequency ${i}: ${actual[i]} vs ${w}`),
    );
  close(rotaryForKeys(settings, 32).invFreq, expected(longrope.short_factor), '32 keys');
  close(rotaryForKeys(settings, 33).invFreq, expected(longrope.long_factor), '33 keys');
  const attentionFactor = Math.sqrt(1 + Math.log(4) / Math.log(32));
  assert.ok(Math.abs(settings.scaleMultiplier - attentionFactor ** 2) < 1e-15);
  // Phi-3 reads its older spellings as LongRoPE (transformers 5 does), with a given attention factor kept.
  for (const type of ['su', 'yarn']) {
    const legacy = configFromHuggingFace({ ...phi3, rope_scaling: { ...longrope, type, attention_factor: 1.5 } });
    const rotary = resolveConfig(legacy.input).rotary!;
    assert.deepEqual(rotary.longRope, {
      shortFactors: longrope.short_factor,
      longFactors: longrope.long_factor,
      originalMaxSeqLen: 32,
      attentionFactor: 1.5,
    });
  }
});

test('LongRoPE over part of the head: its attention factor goes to the rotated query/key rows, not the scale', () => {
  const partial = configFromHuggingFace({
    ...phi3,
    partial_rotary_factor: 0.5,
    rope_scaling: { ...longrope, short_factor: [1, 2], long_factor: [1, 4] },
  });
  assert.equal(partial.rotatedQueryKeyScale, Math.sqrt(1 + Math.log(4) / Math.log(32)));
  const rotary = resolveConfig(partial.input).rotary!;
  assert.equal(rotary.dim, 4);
  assert.equal(rotary.longRope!.attentionFactor, 1);
  assert.equal(rotarySettings(resolveConfig(partial.input))!.scaleMultiplier, 1);
  assert.equal(configFromHuggingFace({ ...phi3, rope_scaling: longrope }).rotatedQueryKeyScale, 1);
  // Qwen3's per-head q/k RMS norm runs after the projection and would undo the scaled rows.
  const qwen3 = {
    ...phi3,
    architectures: ['Qwen3ForCausalLM'],
    partial_rotary_factor: 0.5,
    rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32 },
  };
  assert.throws(() => configFromHuggingFace(qwen3), /which the per-head q\/k norm would undo: not supported/);
});

test('Phi-3 and Gemma settings outside what is supported are named, together', () => {
  assert.throws(
    () =>
      configFromHuggingFace(
        {
          ...phi3,
          hidden_act: 'gelu',
          rope_scaling: { ...longrope, short_factor: [1, 2, 3], long_factor: [1, 2] },
        },
        'phi/config.json',
      ),
    (e: Error) =>
      e.message.startsWith('phi/config.json: cannot import this Phi3ForCausalLM:') &&
      /hidden_act "gelu" is not supported \(the gated MLP is SwiGLU: silu\)/.test(e.message) &&
      /rope_scaling.short_factor must list 4 positive numbers \(one per rotated frequency\), got \[1,2,3\]/.test(
        e.message,
      ) &&
      /rope_scaling.long_factor must list 4 positive numbers/.test(e.message),
  );
  const llamaWithoutOriginal = {
    ...phi3,
    architectures: ['LlamaForCausalLM'],
    original_max_position_embeddings: undefined,
    rope_scaling: longrope,
  };
  assert.throws(
    () => configFromHuggingFace(llamaWithoutOriginal),
    /original_max_position_embeddings must be a number, got undefined/,
  );
  assert.throws(
    () => configFromHuggingFace({ ...gemma, hidden_activation: 'relu' }),
    /hidden_activation "relu" is not supported \(Gemma's MLP is GeGLU with gelu_pytorch_tanh\)/,
  );
  assert.throws(() => configFromHuggingFace({ ...gemma, hidden_act: 'silu' }), /hidden_act "silu" is not supported/);
});

test("Gemma's config: head_dim 256, tied unless given; GeGLU (tanh), offset norms, scaled embeddings", () => {
  const { input, tiedEmbeddings } = configFromHuggingFace(gemma);
  assert.equal(tiedEmbeddings, true);
  assert.equal(input.headDim, 256);
  assert.equal(input.ffActivation, 'geglu');
  assert.equal(input.geluApproximation, 'tanh');
  assert.equal(input.normWeightOffset, 1);
  assert.equal(input.embeddingScale, Math.sqrt(32));
  // transformers 4.x: hidden_activation (tanh when unset) over hidden_act; 5.x: hidden_act "gelu" means tanh.
  for (const extra of [{ hidden_act: 'gelu' }, { hidden_activation: 'gelu_pytorch_tanh', hidden_act: 'relu' }])
    assert.equal(configFromHuggingFace({ ...gemma, ...extra }).input.geluApproximation, 'tanh');
  const explicit = configFromHuggingFace({ ...gemma, head_dim: 8, tie_word_embeddings: false });
  assert.equal(explicit.input.headDim, 8);
  assert.equal(explicit.tiedEmbeddings, false);
});

test("a Phi-3 checkpoint whose fused tensor does not fit the config names the tensor's whole shape", () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'andromeda-phi3-')), 'phi3');
  made.push(dir);
  cpSync(join(HF_FIXTURES, 'phi3'), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, num_key_value_heads: 4 }));
  // 4 query heads of 8 plus 2 × 4 key/value heads of 8: 96 rows; the file has 4·8 + 2·2·8 = 64.
  assert.throws(
    () => importHuggingFace(dir),
    new RegExp(
      String.raw`mismatched \(2\): model\.layers\.0\.self_attn\.qkv_proj\.weight: ` +
        String.raw`config\.json gives \[96, 32\], the file has \[64, 32\]`,
    ),
  );
});

test('the tanh GELU matches PyTorch gelu(approximate="tanh")', () => {
  // torch.nn.functional.gelu(x, approximate='tanh') in float64.
  const x = [-3, -2, -0.5, 0, 0.3, 1, 2.5];
  const torch = [
    -0.0036373920817729943, -0.04540230591222494, -0.15428599017485606, 0, 0.18537092354275922, 0.8411919906082768,
    2.484915733910001,
  ];
  const ours = noGrad(() => tidy(() => values(tanhGelu(Tensor.fromArray(x, [x.length], 'float64')))));
  ours.forEach((v, i) => assert.ok(Math.abs(v - torch[i]!) < 1e-15, `gelu_tanh(${x[i]}) = ${v}, torch ${torch[i]}`));
  // Its gradient (fine-tuning a Gemma): torch.autograd of the same, in float64.
  const torchGrad = [
    -0.011584166630969648, -0.0860992566236183, 0.13263009646535764, 0.5, 0.7322954516388018, 1.0829640838457826,
    1.037951576212666,
  ];
  const input = Tensor.fromArray(x, [x.length], 'float64').requireGrad();
  const total = sum(tanhGelu(input));
  total.backward();
  values(input.grad!).forEach((g, i) =>
    assert.ok(Math.abs(g - torchGrad[i]!) < 1e-14, `d gelu_tanh(${x[i]}) = ${g}, torch ${torchGrad[i]}`),
  );
  total.dispose();
  input.dispose();
});

const small: AndromedaConfigInput = {
  vocabSize: 11,
  dim: 16,
  depth: 2,
  heads: 2,
  headDim: 8,
  ffActivation: 'geglu',
  feedForwardBias: false,
  norm: 'rmsnorm',
  rotary: { dim: 8 },
};

test('a fresh model with norm weight offset 1 starts as the plain one: weights at 0 scale by 1', () => {
  const plain = new Andromeda(small, { seed: 3 });
  const offset = new Andromeda({ ...small, normWeightOffset: 1 }, { seed: 3 });
  try {
    assert.ok(offset.finalNorm instanceof OffsetRMSNorm);
    assert.deepEqual([...values(offset.finalNorm!.namedParameters()[0]![1])], new Array(16).fill(0));
    const tokens = Tensor.fromArray([1, 5, 7, 2, 9], [1, 5], 'int32');
    const [a, b] = noGrad(() => tidy(() => [values(plain.forward(tokens)), values(offset.forward(tokens))]));
    assert.deepEqual(b, a, '(0 + 1)·x̂ is 1·x̂ exactly');
    tokens.dispose();
  } finally {
    plain.dispose();
    offset.dispose();
  }
});

test('the embedding scale multiplies the embeddings (rounded to the dtype) and the gradient flows through it', () => {
  const scale = Math.sqrt(16);
  const scaled = new Andromeda({ ...small, embeddingScale: scale }, { seed: 4 });
  const plain = new Andromeda(small, { seed: 4 });
  try {
    // Scaling the table by the same factor gives the plain model the scaled model's inputs.
    const table = scaled.embedding.weight;
    const scaledTable = Tensor.fromArray(
      values(table).map((v) => v * scale),
      table.shape,
      'float32',
    );
    plain.loadStateDict(new Map([['embedding.weight', scaledTable]]), { strict: false });
    scaledTable.dispose();
    const tokens = Tensor.fromArray([3, 1, 4, 1, 5, 9], [1, 6], 'int32');
    const [a, b] = noGrad(() => tidy(() => [values(scaled.forward(tokens)), values(plain.forward(tokens))]));
    assert.ok(relativeError(a, b) < 1e-6, `logits differ by ${relativeError(a, b)}`);
    const loss = scaled.loss(tokens);
    loss.backward();
    assert.ok(
      values(scaled.embedding.weight.grad!).some((g) => g !== 0),
      'the embedding gets a gradient',
    );
    loss.dispose();
    tokens.dispose();
  } finally {
    scaled.dispose();
    plain.dispose();
  }
});

test('the new options are validated and count their parameters as the model creates them', () => {
  const config = resolveConfig({ ...small, normWeightOffset: 1, embeddingScale: 4, geluApproximation: 'tanh' });
  assert.equal(parameterCountOf(config), countParameters(config));
  assert.throws(
    () => resolveConfig({ ...small, norm: 'layernorm', normWeightOffset: 1 }),
    /normWeightOffset 1 applies to RMS norms only, but norm is 'layernorm'/,
  );
  assert.throws(() => resolveConfig({ ...small, embeddingScale: 0 }), /embeddingScale must be positive, got 0/);
  assert.throws(
    () => resolveConfig({ ...small, geluApproximation: 'erf' as 'none' }),
    /geluApproximation must be 'none' or 'tanh', got 'erf'/,
  );
  assert.throws(
    () =>
      resolveConfig({
        ...small,
        rotary: {
          dim: 8,
          longRope: { shortFactors: [1, 2], longFactors: [1, 2, 3, 4], originalMaxSeqLen: 16, attentionFactor: 1 },
          interpolationFactor: 2,
        },
      }),
    (e: Error) =>
      /rotary longRope shortFactors must be 4 positive numbers/.test(e.message) &&
      /give one frequency scaling, not interpolationFactor and longRope/.test(e.message),
  );
});

test('andromeda convert keeps what Gemma, Gemma 2 and Phi-3 LongRoPE compute (the new options round-trip)', () => {
  const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  for (const name of ['gemma', 'gemma2', 'phi3-partial-longrope']) {
    const out = join(mkdtempSync(join(tmpdir(), 'andromeda-convert-')), name);
    made.push(out);
    const run = spawnSync(process.execPath, [cli, 'convert', join(HF_FIXTURES, name), out], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const { model: converted } = loadCheckpoint(out);
    const { model: direct } = importHuggingFace(join(HF_FIXTURES, name));
    try {
      // 40 tokens: past the LongRoPE fixture's original length of 32, so its long factors run.
      const tokens = Tensor.fromArray(
        Array.from({ length: 40 }, (_, i) => (i * 37) % 250),
        [1, 40],
        'int32',
      );
      const [a, b] = noGrad(() => tidy(() => [values(converted.forward(tokens)), values(direct.forward(tokens))]));
      assert.deepEqual(a, b, name);
      tokens.dispose();
    } finally {
      converted.dispose();
      direct.dispose();
    }
  }
});
