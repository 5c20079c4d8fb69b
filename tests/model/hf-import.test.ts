import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { Tensor } from '../../src/tensor/tensor.js';
import { getEngine } from '../../src/engine/index.js';
import { CudaEngine } from '../../src/engine/cuda.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { loadCheckpoint } from '../../src/model/weights-file.js';
import { configFromHuggingFace, importHuggingFace, transformersHeadOf } from '../../src/model/hf-import.js';
import { parameterCountOf, resolveConfig, type AndromedaConfigInput } from '../../src/model/config.js';
import { pagedAttentionUnsupported } from '../../src/model/attention.js';
import { andromedaFamily } from '../../src/train/andromeda-adapter.js';
import { hasPagedForward, pagedCacheBytesPerBlock } from '../../src/inference/runners.js';
import { countParameters } from '../../src/model/parameter-shapes.js';
import { dynamicNtkBase, llama3InverseFrequencies, rotaryForKeys, rotarySettings } from '../../src/model/rotary.js';
import { referenceLogits } from './hf-reference.js';
import { checkpointTensors, writeCheckpoint, type SyntheticCase } from './hf-synthetic.js';
import { maxAbsDiff, relativeError, values } from './helpers.js';

const made: string[] = [];
const temp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'andromeda-hf-'));
  made.push(d);
  return d;
};
after(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Parity with transformers: the fixtures scripts/fixtures/make-hf-fixtures.py makes on the GPU machine.

const HF_FIXTURES = fileURLToPath(new URL('../../../tests/fixtures/hf/', import.meta.url));
const fixtureCases = existsSync(join(HF_FIXTURES, 'manifest.json'))
  ? Object.keys(JSON.parse(readFileSync(join(HF_FIXTURES, 'manifest.json'), 'utf8')).cases as object)
  : [];

if (fixtureCases.length === 0) {
  test(
    'transformers parity fixtures',
    {
      skip:
        'tests/fixtures/hf is not committed yet: run `python3 ' +
        'scripts/fixtures/make-hf-fixtures.py tests/fixtures/hf` on the GPU machine',
    },
    () => {},
  );
}
// float32: the bar of issue 16. float64: bounded near 1e-7 by the references themselves, stored in float32 and,
// where the manifest has no unmodified_float64_vs_reference entry, computed with transformers' float32 RMSNorm
// and rotary tables.
const FIXTURE_BOUNDS = [
  ['float32', 1e-5],
  ['float64', 1e-6],
] as const;
for (const name of fixtureCases)
  for (const [dtype, bound] of FIXTURE_BOUNDS) {
    test(`transformers parity: ${name} logits and loss on the CPU engine in ${dtype} within ${bound}`, () => {
      const dir = join(HF_FIXTURES, name);
      const { model } = importHuggingFace(dir, { dtype });
      const io = readSafetensors(join(dir, 'io.safetensors'));
      try {
        const tokens = io.tensors.get('tokens')!;
        const expectedLoss = io.tensors.get('loss')!.item();
        const report = noGrad(() =>
          tidy(() => ({ logits: values(model.forward(tokens)), loss: model.loss(tokens).item() })),
        );
        // The rotary frequencies first (fixtures made since the script records them): a wrong scaling formula
        // shows here before it blurs into the logits.
        const stored = io.tensors.get('inv_freq');
        if (stored) {
          const ours = rotaryForKeys(rotarySettings(model.config)!, tokens.shape[1]!).invFreq;
          const theirs = values(stored);
          assert.equal(ours.length, theirs.length, `${name}: rotary frequency count`);
          for (let i = 0; i < ours.length; i++)
            assert.ok(
              Math.abs(ours[i]! - theirs[i]!) <= 4e-7 * theirs[i]!,
              `${name}: inverse frequency ${i} is ${ours[i]}, transformers used ${theirs[i]}`,
            );
        }
        const reference = values(io.tensors.get('logits')!);
        const error = relativeError(report.logits, reference);
        const scale = reference.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        assert.ok(
          error < bound,
          `${name}: logits relative error ${error.toExponential(2)} (max |diff| ` +
            `${maxAbsDiff(report.logits, reference).toExponential(2)} of max |logit| ${scale.toFixed(2)})`,
        );
        assert.ok(
          Math.abs(report.loss - expectedLoss) <= bound * Math.abs(expectedLoss),
          `${name}: loss ${report.loss} vs transformers ${expectedLoss}`,
        );
      } finally {
        model.dispose();
        for (const t of io.tensors.values()) t.dispose();
      }
    });
  }

// ---------------------------------------------------------------------------------------------
// Checkpoints written here, checked against a float64 transcription of transformers (./hf-reference.ts).

const base = { vocab: 37, layers: 2, eps: 1e-5, theta: 10000, window: null, qkNorm: false, parallel: false };
const SYNTHETIC: SyntheticCase[] = [
  {
    name:
      'Llama: grouped-query heads (4 over 2), head_dim 8 ≠ hidden/heads, q/k/v/o and MLP biases, tied, ' +
      'bf16 in 2 shards',
    spec: { ...base, dim: 12, heads: 4, kvHeads: 2, headDim: 8, inner: 20, rotaryDim: 8, norm: 'rms', tied: true },
    config: {
      architectures: ['LlamaForCausalLM'],
      vocab_size: 37,
      hidden_size: 12,
      intermediate_size: 20,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 8,
      rms_norm_eps: 1e-5,
      attention_bias: true,
      mlp_bias: true,
      tie_word_embeddings: true,
      rope_theta: 10000,
      rope_scaling: null,
      torch_dtype: 'bfloat16',
    },
    biases: { qkv: true, o: true, mlp: true },
    stored: 'bfloat16',
    shards: 2,
  },
  {
    name: 'Mistral: sliding window 4 over 11 tokens, 6 heads over 3',
    spec: {
      ...base,
      dim: 12,
      heads: 6,
      kvHeads: 3,
      headDim: 4,
      inner: 16,
      rotaryDim: 4,
      norm: 'rms',
      tied: false,
      window: 4,
      theta: 1e6,
    },
    config: {
      architectures: ['MistralForCausalLM'],
      vocab_size: 37,
      hidden_size: 12,
      intermediate_size: 16,
      num_hidden_layers: 2,
      num_attention_heads: 6,
      num_key_value_heads: 3,
      head_dim: 4,
      rms_norm_eps: 1e-5,
      sliding_window: 4,
      rope_theta: 1e6,
    },
    biases: { qkv: false, o: false, mlp: false },
    stored: 'float32',
    shards: 1,
  },
  {
    name: 'Qwen3: per-head RMS qk-norm before rotary, 4 heads over 1',
    spec: {
      ...base,
      dim: 8,
      heads: 4,
      kvHeads: 1,
      headDim: 6,
      inner: 12,
      rotaryDim: 6,
      norm: 'rms',
      tied: false,
      qkNorm: true,
    },
    config: {
      architectures: ['Qwen3ForCausalLM'],
      vocab_size: 37,
      hidden_size: 8,
      intermediate_size: 12,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 6,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      use_sliding_window: false,
    },
    biases: { qkv: false, o: false, mlp: false },
    stored: 'float16',
    shards: 1,
  },
  {
    name: 'StableLM: parallel residual, partial rotary 0.5, LayerNorm with bias, q/k/v biases',
    spec: {
      ...base,
      dim: 16,
      heads: 2,
      kvHeads: 2,
      headDim: 8,
      inner: 24,
      rotaryDim: 4,
      norm: 'layer',
      tied: false,
      parallel: true,
    },
    config: {
      architectures: ['StableLmForCausalLM'],
      vocab_size: 37,
      hidden_size: 16,
      intermediate_size: 24,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      num_key_value_heads: 2,
      layer_norm_eps: 1e-5,
      partial_rotary_factor: 0.5,
      use_qkv_bias: true,
      use_parallel_residual: true,
      rope_theta: 10000,
    },
    biases: { qkv: true, o: false, mlp: false },
    stored: 'float32',
    shards: 1,
  },
];

for (const c of SYNTHETIC) {
  test(`transformers checkpoint written here: ${c.name} — logits match the float64 transcription`, () => {
    const dir = temp();
    const tensors = checkpointTensors(c);
    writeCheckpoint(dir, c, tensors);
    const tokens = [3, 17, 0, 36, 5, 5, 21, 8, 30, 12, 1];
    const reference = referenceLogits(c.spec, tensors, tokens);
    for (const [dtype, bound] of [
      ['float32', 1e-5],
      ['float64', 1e-9],
    ] as const) {
      const { model } = importHuggingFace(dir, { dtype });
      try {
        const logits = noGrad(() =>
          tidy(() => values(model.forward(Tensor.fromArray(tokens, [1, tokens.length], 'int32')))),
        );
        const error = relativeError(logits, reference);
        assert.ok(error < bound, `${dtype}: logits relative error ${error.toExponential(2)} (bound ${bound})`);
      } finally {
        model.dispose();
      }
    }
  });
}

test('decoding with a KV cache gives the full forward’s last logits for a sliding-window Mistral', () => {
  const c = SYNTHETIC[1]!;
  const dir = temp();
  writeCheckpoint(dir, c, checkpointTensors(c));
  const { model } = importHuggingFace(dir);
  try {
    const tokens = [3, 17, 0, 36, 5, 5, 21, 8, 30];
    const full = noGrad(() => tidy(() => values(model.forward(Tensor.fromArray(tokens, [1, 9], 'int32')))));
    const cache = model.createKVCache(1);
    let last: Float64Array = new Float64Array();
    noGrad(() => {
      for (const t of tokens)
        last = tidy(() => values(model.forward(Tensor.fromArray([t], [1, 1], 'int32'), { kvCache: cache })));
    });
    cache.dispose();
    assert.ok(relativeError(last, full.subarray(8 * 37)) < 1e-5, 'incremental logits differ from the full forward');
  } finally {
    model.dispose();
  }
});

test('an unsupported architecture is one line naming the supported ones', () => {
  assert.throws(
    () => configFromHuggingFace({ architectures: ['GPT2LMHeadModel'], n_embd: 8 }, 'gpt2/config.json'),
    (e: Error) =>
      e.message ===
      'gpt2/config.json: architecture "GPT2LMHeadModel" is not supported; supported: LlamaForCausalLM, ' +
        'MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, StableLmForCausalLM, Phi3ForCausalLM, ' +
        'GemmaForCausalLM, Gemma2ForCausalLM',
  );
});

test('config problems are listed together before anything is read', () => {
  assert.throws(
    () =>
      configFromHuggingFace({
        architectures: ['LlamaForCausalLM'],
        hidden_size: 8,
        num_attention_heads: 2,
        num_hidden_layers: 1,
        vocab_size: 10,
        intermediate_size: 16,
        hidden_act: 'gelu',
        rope_scaling: { rope_type: 'proportional', factor: 2 },
      }),
    /hidden_act "gelu" is not supported[\s\S]*rope_scaling type "proportional" is not supported/,
  );
  assert.throws(
    () =>
      configFromHuggingFace({
        architectures: ['Qwen2ForCausalLM'],
        hidden_size: 8,
        num_attention_heads: 2,
        num_hidden_layers: 1,
        vocab_size: 10,
        intermediate_size: 16,
        use_sliding_window: true,
      }),
    /use_sliding_window = true/,
  );
});

test('rope_scaling kinds map onto the rotary options (transformers 4.x and 5.x spellings)', () => {
  const llama = {
    architectures: ['LlamaForCausalLM'],
    hidden_size: 64,
    num_attention_heads: 4,
    num_hidden_layers: 1,
    vocab_size: 10,
    intermediate_size: 16,
    max_position_embeddings: 256,
  };
  const rotary = (extra: Record<string, unknown>) =>
    resolveConfig(configFromHuggingFace({ ...llama, ...extra }).input).rotary!;
  assert.equal(rotary({ rope_scaling: { type: 'linear', factor: 4 } }).interpolationFactor, 4);
  assert.deepEqual(rotary({ rope_scaling: { rope_type: 'dynamic', factor: 2 } }).dynamicNtk, {
    factor: 2,
    originalMaxSeqLen: 256,
  });
  const v5 = rotary({
    rope_parameters: {
      rope_type: 'llama3',
      rope_theta: 500000,
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    },
  });
  assert.equal(v5.base, 500000);
  assert.deepEqual(v5.llama3, { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxSeqLen: 64 });
  const yarn = rotary({ rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64 } });
  assert.equal(yarn.yarn!.originalMaxSeqLen, 64);
  assert.ok(Math.abs(yarn.yarn!.attentionFactor - (0.1 * Math.log(4) + 1)) < 1e-15);
  assert.equal(yarn.dim, 16, 'the whole head rotates in Llama');
  const stablelm = configFromHuggingFace({
    architectures: ['StableLmForCausalLM'],
    hidden_size: 64,
    num_attention_heads: 4,
    num_hidden_layers: 1,
    vocab_size: 10,
    intermediate_size: 16,
  });
  assert.equal((stablelm.input.rotary as { dim: number }).dim, 4, 'StableLM rotates a quarter of the head');
});

test('Llama 3.1 frequencies: kept, divided and blended bands derived by hand', () => {
  // dim 8, base 10000: f_i = 10000^(−i/4) = 1, 0.1, 0.01, 0.001; wavelengths 2π/f ≈ 6.28, 62.8, 628, 6283.
  // original 1024, low 1, high 4: wavelengths < 256 kept, > 1024 divided by 8, in between blended.
  const f = llama3InverseFrequencies(8, 10000, {
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxSeqLen: 1024,
  });
  const s = (1024 / ((2 * Math.PI) / 0.01) - 1) / 3; // 628 lies between 256 and 1024
  const expected = [1, 0.1, (1 - s) * (0.01 / 8) + s * 0.01, 0.001 / 8];
  for (let i = 0; i < 4; i++)
    assert.ok(Math.abs(f[i]! - expected[i]!) <= 1e-15 * expected[i]!, `f${i}: ${f[i]} vs ${expected[i]}`);
});

test('dynamic NTK: the base grows with the number of keys only beyond the original length', () => {
  const config = resolveConfig({
    vocabSize: 10,
    dim: 16,
    depth: 1,
    heads: 2,
    headDim: 8,
    rotary: { dim: 8, base: 10000, dynamicNtk: { factor: 2, originalMaxSeqLen: 32 } },
  });
  const settings = rotarySettings(config)!;
  assert.equal(rotaryForKeys(settings, 32), settings, 'at the original length the frequencies are the plain ones');
  // 40 keys: base 10000 · (2·40/32 − 1)^(8/6) = 10000 · 1.5^(4/3).
  const base = 10000 * 1.5 ** (4 / 3);
  assert.ok(Math.abs(dynamicNtkBase(10000, 8, 2, 32, 40) - base) < 1e-9 * base);
  const grown = rotaryForKeys(settings, 40).invFreq;
  for (let i = 0; i < 4; i++) assert.equal(grown[i], Math.fround(1 / base ** ((2 * i) / 8)));
});

test('query heads are reordered so that our grouping (h mod G) reads the key/value head transformers pairs', () => {
  // transformers: head h reads ⌊h / R⌋. Ours: head a reads a mod G; a ↦ transformersHeadOf(a) must preserve that.
  for (const [heads, kvHeads] of [
    [8, 2],
    [6, 3],
    [4, 4],
    [4, 1],
  ] as const) {
    const seen = new Set<number>();
    for (let a = 0; a < heads; a++) {
      const h = transformersHeadOf(a, heads, kvHeads);
      assert.equal(Math.floor(h / (heads / kvHeads)), a % kvHeads, `${heads}/${kvHeads}: head ${a} → ${h}`);
      seen.add(h);
    }
    assert.equal(seen.size, heads, 'a permutation');
  }
});

test('the new options count their parameters as the model creates them', () => {
  const config = resolveConfig({
    vocabSize: 11,
    dim: 12,
    depth: 2,
    heads: 4,
    kvHeads: 2,
    headDim: 8,
    ffInnerDim: 20,
    ffActivation: 'swiglu',
    feedForwardBias: false,
    qkvBias: true,
    attentionOutputBias: true,
    qkRmsNorm: true,
    norm: 'rmsnorm',
    slidingWindow: 3,
    rotary: { dim: 8 },
  });
  assert.equal(parameterCountOf(config), countParameters(config));
  assert.throws(
    () => resolveConfig({ vocabSize: 11, dim: 12, depth: 1, heads: 2, qkNorm: true, qkRmsNorm: true }),
    /qkRmsNorm .* and qkNorm .* exclude each other/,
  );
  assert.throws(
    () => resolveConfig({ vocabSize: 11, dim: 12, depth: 1, heads: 2, slidingWindow: 0 }),
    /slidingWindow must be a positive integer/,
  );
});

test('andromeda convert takes a transformers folder and keeps its tokenizer files', () => {
  const c = SYNTHETIC[3]!;
  const source = temp();
  writeCheckpoint(source, c, checkpointTensors(c));
  writeFileSync(join(source, 'tokenizer_config.json'), '{"bos_token": "<s>"}');
  const out = join(temp(), 'converted');
  const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const run = spawnSync(process.execPath, [cli, 'convert', source, out], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.ok(readdirSync(out).includes('tokenizer_config.json'));
  const { model: converted } = loadCheckpoint(out);
  const { model: direct } = importHuggingFace(source);
  try {
    const tokens = Tensor.fromArray([1, 2, 3, 4], [1, 4], 'int32');
    const [a, b] = noGrad(() => tidy(() => [values(converted.forward(tokens)), values(direct.forward(tokens))]));
    assert.deepEqual(a, b);
    tokens.dispose();
  } finally {
    converted.dispose();
    direct.dispose();
  }
});

test('andromeda generate loads a transformers folder directly, and names the missing tokenizer', (t) => {
  if (!fixtureCases.includes('llama')) return t.skip('tests/fixtures/hf/llama is not committed yet');
  const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const dir = join(HF_FIXTURES, 'llama');
  const generate = (...extra: string[]) =>
    spawnSync(process.execPath, [cli, 'generate', dir, '--device', 'cpu', '--max-tokens', '3', ...extra], {
      encoding: 'utf8',
    });
  const run = generate('--tokenizer', 'byte', '--temperature', '0');
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr + run.stdout, /3 tokens/);
  const missing = generate();
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /has no tokenizer\.json: pass --tokenizer <tokenizer\.json> or --tokenizer byte/);
});

test('head shapes outside the CUDA kernels (StableLM-3B: 80 dims, 20 rotated) take the reference path', () => {
  const cuda = (kernel: 'dense' | 'paged', headDim: number, rotaryDim: number) =>
    CudaEngine.prototype.fusedAttentionUnsupported.call(undefined, {
      kernel,
      heads: 32,
      alibi: false,
      headDim,
      rotaryDim,
    });
  assert.match(cuda('dense', 80, 20) ?? '', /head dim 80 \(the CUDA kernels support 32, 64 and 128\)/);
  assert.match(cuda('paged', 80, 20) ?? '', /head dim 80/);
  assert.match(cuda('dense', 64, 20) ?? '', /rotary dim 20/);
  assert.equal(cuda('paged', 64, 20), null, 'the paged kernel rotates any even number of features');
  assert.equal(cuda('dense', 128, 128), null, 'Llama, Mistral, Qwen: fused');
  assert.equal(cuda('dense', 64, 64), null, 'SmolLM, TinyLlama, Qwen2-0.5B: fused');
  for (const kernel of ['dense', 'paged'] as const)
    assert.equal(
      getEngine('cpu').fusedAttentionUnsupported({ kernel, heads: 32, alibi: false, headDim: 80, rotaryDim: 20 }),
      null,
    );
});

test('dynamic NTK runs outside the paged forward; a sliding window is paged on the CPU', () => {
  const lm = (extra: Partial<AndromedaConfigInput>) =>
    andromedaFamily.create(
      resolveConfig({ vocabSize: 11, dim: 16, depth: 1, heads: 2, headDim: 8, rotary: { dim: 8 }, ...extra }),
      {
        seed: 0,
        device: 'cpu',
      },
    );
  const cases: [Partial<AndromedaConfigInput>, boolean][] = [
    [{}, true],
    [{ qkRmsNorm: true, qkvBias: true }, true],
    [{ slidingWindow: 4 }, true],
    [{ rotary: { dim: 8, dynamicNtk: { factor: 2, originalMaxSeqLen: 16 } } }, false],
  ];
  for (const [extra, paged] of cases) {
    const model = lm(extra);
    try {
      assert.equal(hasPagedForward(model), paged, JSON.stringify(extra));
      assert.equal(pagedCacheBytesPerBlock(model, 16) !== null, paged);
    } finally {
      model.dispose();
    }
  }
  assert.equal(
    pagedAttentionUnsupported(resolveConfig({ vocabSize: 11, dim: 16, depth: 1, heads: 2, slidingWindow: 3 })),
    null,
  );
  assert.equal(
    pagedAttentionUnsupported(
      resolveConfig({ vocabSize: 11, dim: 16, depth: 1, heads: 2, rotary: { dynamicNtk: { factor: 2 } } }),
    ),
    'dynamic NTK rotary scaling',
  );
});
