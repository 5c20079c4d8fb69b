// Long-context training: the trainer's loss computed block by block from the hidden states equals the
// loss from the full logits (value and every parameter's gradient, on a packed batch with document
// boundaries); the 3B at 1 × 32,768 passes the config checks, packs, and plans within 80 GB.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { tidy } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Andromeda } from '../../src/model/andromeda.js';
import { crossEntropy } from '../../src/ops/nn.js';
import { narrow } from '../../src/ops/layout.js';
import { Generator } from '../../src/tensor/random.js';
import { makeBatch } from '../../src/data/packing.js';
import { andromedaFamily } from '../../src/train/andromeda-adapter.js';
import { batchLoss, batchTensors, usesChunkedLoss } from '../../src/train/next-token-loss.js';
import type { LanguageModel } from '../../src/train/model.js';
import { DEFAULT_CROSS_ENTROPY_CHUNK_ROWS } from '../../src/ops/chunked-cross-entropy.js';
import { planTrainingMemory } from '../../src/train/memory-plan.js';
import { DEFAULT_CONFIG, validateConfig } from '../../src/train/config.js';
import { MixtureLoader } from '../../src/data/mixture.js';
import { ArrayTokenSource } from '../../src/data/token-source.js';

const vocab = 61,
  eos = 0,
  seqLen = 24,
  rows = 2;

function packedBatch() {
  const gen = new Generator(11);
  const row = () =>
    Int32Array.from({ length: seqLen + 1 }, (_, t) =>
      t % 9 === 4 ? eos : 1 + Math.floor(gen.uniform() * (vocab - 1)),
    );
  return makeBatch([row(), row()], { seqLen, eosId: eos, segments: true });
}

function lossAndGradients(model: LanguageModel, loss: 'chunked' | 'full', checkpointing: boolean) {
  for (const [, p] of model.namedParameters()) p.grad = null;
  return tidy(() => {
    const value = batchLoss(model, batchTensors(packedBatch(), 'cpu', true), 'mean', {
      loss,
      chunkRows: 7,
      activationCheckpointing: checkpointing,
    });
    value.backward();
    return {
      loss: value.item(),
      grads: model.namedParameters().map(([name, p]) => [name, Float64Array.from(p.grad!.toArray())] as const),
    };
  });
}

for (const tied of [false, true]) {
  test(`chunked and full loss agree on a packed batch (${tied ? 'tied' : 'separate'} output head)`, () => {
    const config = andromedaFamily.presetConfig('tiny', vocab, { tiedEmbeddings: tied });
    const model = andromedaFamily.create(config, { seed: 5, device: 'cpu' });
    try {
      const full = lossAndGradients(model, 'full', false);
      const chunked = lossAndGradients(model, 'chunked', true);
      assert.ok(Number.isFinite(full.loss) && full.loss > 1, `loss ${full.loss}`);
      assert.ok(Math.abs(chunked.loss - full.loss) < 1e-5, `chunked ${chunked.loss} vs full ${full.loss}`);
      for (const [i, [name, g]] of full.grads.entries()) {
        const other = chunked.grads[i]![1];
        let worst = 0,
          scale = 0;
        for (let j = 0; j < g.length; j++) {
          worst = Math.max(worst, Math.abs(g[j]! - other[j]!));
          scale = Math.max(scale, Math.abs(g[j]!));
        }
        assert.ok(worst <= 1e-4 * Math.max(scale, 1e-3), `${name}: differs by ${worst} (largest ${scale})`);
      }
    } finally {
      model.dispose();
    }
  });
}

test('the loss is chunked by default only when a batch has more rows than one block', () => {
  const model = andromedaFamily.create(andromedaFamily.presetConfig('tiny', vocab), { seed: 1, device: 'cpu' });
  try {
    assert.equal(usesChunkedLoss(model, DEFAULT_CROSS_ENTROPY_CHUNK_ROWS), false);
    assert.equal(usesChunkedLoss(model, DEFAULT_CROSS_ENTROPY_CHUNK_ROWS + 1), true);
    assert.equal(usesChunkedLoss(model, 8, { chunkRows: 4 }), true);
    assert.equal(usesChunkedLoss(model, 1 << 20, { loss: 'full' }), false);
    const headless = { ...model, hiddenStates: undefined, outputHead: undefined } as unknown as LanguageModel;
    assert.equal(usesChunkedLoss(headless, 1 << 20), false);
    assert.throws(() => usesChunkedLoss(headless, 8, { loss: 'chunked' }), /does not expose its hidden states/);
  } finally {
    model.dispose();
  }
});

test('andromeda-3b at 1 × 32,768 plans within 80 GB only with checkpointing; the chunked head keeps one block', () => {
  const modelConfig = andromedaFamily.presetConfig('andromeda-3b', 50432) as unknown as Record<string, unknown>;
  const plan = (activationCheckpointing: boolean, optimizer: 'adamw' | 'adamw8bit', seqLen = 32768) =>
    planTrainingMemory({
      parameterCount: andromedaFamily.parameterCount!(modelConfig as never),
      modelConfig,
      vocabSize: 50432,
      config: { batchSize: 1, seqLen, activationCheckpointing, optimizer },
      computeBytes: 2,
      mixedPrecision: true,
    });
  const GB = 1e9;
  const longContext = plan(true, 'adamw8bit');
  assert.ok(longContext.bytes < 40 * GB, `planned ${longContext.bytes / GB} GB`);
  assert.ok(plan(false, 'adamw8bit').bytes > 80 * GB, 'every block activation kept does not fit');
  const head = longContext.parts.find((p) => /logits/.test(p.label))!;
  assert.equal(head.bytes, 2 * 50432 * DEFAULT_CROSS_ENTROPY_CHUNK_ROWS, 'one bf16 block of logits');
  const short = plan(true, 'adamw8bit', 2048).parts.find((p) => /logits/.test(p.label))!;
  assert.equal(short.bytes, 2 * 2 * 50432 * 2048, 'below one block: the logits and their gradient');
  assert.ok(plan(true, 'adamw').bytes - longContext.bytes > 14 * GB, '8-bit moments save over 14 GB');
});

test('Andromeda.loss chunks above one block of rows and equals the loss of the full logits', () => {
  const model = Andromeda.fromPreset('tiny', { vocabSize: vocab }, { seed: 2 });
  try {
    const n = 2101; // two rows of 2,100 predictions: 4,200 rows, more than one block
    const gen = new Generator(4);
    const host = Int32Array.from({ length: 2 * n }, () => Math.floor(gen.uniform() * vocab));
    const run = (chunked: boolean) =>
      tidy(() => {
        for (const p of model.parameters()) p.grad = null;
        const tokens = Tensor.fromArray(host, [2, n], 'int32', 'cpu');
        const loss = chunked
          ? model.loss(tokens)
          : crossEntropy(
              narrow(model.forward(tokens), 1, 0, n - 1),
              Tensor.fromArray(
                Int32Array.from(
                  { length: 2 * (n - 1) },
                  (_, i) => host[Math.floor(i / (n - 1)) * n + (i % (n - 1)) + 1]!,
                ),
                [2, n - 1],
                'int32',
                'cpu',
              ),
            );
        loss.backward();
        return [loss.item(), Array.from(model.outputHead.weight.grad!.toArray())] as const;
      });
    const [fullLoss, fullGrad] = run(false);
    const [chunkedLoss, chunkedGrad] = run(true);
    assert.ok(Math.abs(chunkedLoss - fullLoss) < 1e-5, `chunked ${chunkedLoss} vs full ${fullLoss}`);
    const worst = fullGrad.reduce((m, g, i) => Math.max(m, Math.abs(g - chunkedGrad[i]!)), 0);
    assert.ok(worst < 1e-6, `head gradient differs by ${worst}`);
  } finally {
    model.dispose();
  }
});

test('the trainer takes andromeda-3b at --seq-len 32768 and the loader packs rows of 32,768 tokens', () => {
  const config = validateConfig({
    ...DEFAULT_CONFIG,
    preset: 'andromeda-3b',
    seqLen: 32768,
    batchSize: 1,
    optimizer: 'adamw8bit',
    activationCheckpointing: true,
  });
  assert.equal(config.seqLen, 32768);
  const eosId = 50431;
  const stream = Int32Array.from({ length: 100_000 }, (_, i) => (i % 5000 === 4999 ? eosId : i % 50000));
  const loader = new MixtureLoader({
    sources: [{ name: 'corpus', tokens: new ArrayTokenSource(stream) }],
    seqLen: config.seqLen,
    batchSize: config.batchSize,
    seed: 0,
    segments: true,
    eosId,
  });
  const batch = loader.next();
  assert.equal(batch.inputs.length, 32768);
  assert.equal(batch.targets.length, 32768);
  for (let t = 0; t + 1 < 32768; t++)
    if (batch.targets[t] !== batch.inputs[t + 1]) assert.fail(`target ${t} is not the next input`);
  assert.ok(batch.segmentIds[32767]! >= 6, 'document boundaries every 5,000 tokens become segments');
});
