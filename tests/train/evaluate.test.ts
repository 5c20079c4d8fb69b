import { test } from 'node:test';
import assert from 'node:assert/strict';
import { heldOutRows, evaluate } from '../../src/train/evaluate.js';
import { openTrainingData } from '../../src/data/training-data.js';
import { unigramCosts, unigramCrossEntropy } from '../../src/data/loss-units.js';
import { ConcatTokenSource } from '../../src/data/token-source.js';
import { smallDataset } from './helpers.js';
import { ToyModel } from './toy-model.js';

test('a full evaluation scores every held-out token after the first exactly once', () => {
  for (const [length, seqLen] of [
    [101, 10],
    [100, 10],
    [11, 10],
    [57, 8],
    [1000, 7],
  ]) {
    const scored = new Uint8Array(length);
    for (const row of heldOutRows(length, seqLen, 0)) {
      assert.ok(row.start >= 0 && row.start + seqLen + 1 <= length);
      for (let t = row.skip; t < seqLen; t++) scored[row.start + 1 + t]++;
    }
    assert.equal(scored[0], 0);
    for (let i = 1; i < length; i++) assert.equal(scored[i], 1, `length ${length} seqLen ${seqLen} token ${i}`);
  }
  assert.deepEqual(heldOutRows(10, 10, 0), []);
});

test('a limited evaluation samples rows spread over the whole split', () => {
  const rows = heldOutRows(10_001, 10, 100);
  assert.equal(rows.length, 10);
  assert.equal(rows[0].start, 0);
  assert.ok(rows[9].start >= 9000, 'reaches the end of the split');
  assert.ok(rows.every((r) => r.skip === 0 && r.start % 10 === 0));
});

test('evaluate: bits per byte over the exact held-out bytes, unigram baseline on the same targets', async () => {
  const data = await openTrainingData([{ dir: await smallDataset() }]);
  const model = new ToyModel({ vocabSize: data.tokenizer.vocabSize, dim: 8 }, 3);
  try {
    const costs = unigramCosts(
      data.sources.map((s) => s.tokens),
      data.tokenizer.vocabSize,
    );
    const full = evaluate(model, data, {
      seqLen: 16,
      batchSize: 3,
      segments: true,
      device: 'cpu',
      maxTokens: 0,
      unigramCosts: costs,
    });
    assert.equal(full.tokens, data.heldOut.length - 1);
    const firstBytes = data.tokenizer.tokenBytes(data.heldOut.read(0, 1)[0]).length;
    assert.equal(full.bytes, data.heldOutTextBytes - firstBytes, 'every byte of the held-out text but the first token');
    assert.ok(Math.abs(full.bitsPerByte - (full.loss * full.tokens) / (Math.LN2 * full.bytes)) < 1e-9);
    // The unigram cost table reproduces the data pipeline's add-one unigram cross-entropy.
    const reference = unigramCrossEntropy(
      new ConcatTokenSource(data.sources.map((s) => s.tokens)),
      data.heldOut.read(1, data.heldOut.length - 1),
      data.tokenizer.vocabSize,
    );
    assert.ok(Math.abs(full.unigramLoss - reference) < 1e-9, `${full.unigramLoss} vs ${reference}`);
    const sample = evaluate(model, data, { seqLen: 16, batchSize: 4, segments: true, device: 'cpu', maxTokens: 64 });
    assert.equal(sample.tokens, 64);
    assert.ok(Number.isNaN(sample.unigramLoss));
  } finally {
    model.dispose();
    data.close();
  }
});
