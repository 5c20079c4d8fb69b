import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bitsPerByte } from '../../src/data/loss-units.js';
import { tokenizeToDataset } from '../../src/data/tokenize-dataset.js';
import { defaultCorpusTrainingData, openTrainingData } from '../../src/data/training-data.js';

test('default corpus training data: prose and code sources, held-out stream, baseline', async () => {
  const data = await defaultCorpusTrainingData('byte');
  assert.deepEqual(
    data.sources.map((s) => [s.name, s.weight]),
    [
      ['prose', 3],
      ['code', 1],
    ],
  );
  assert.ok(data.heldOut.length > 100_000);
  assert.ok(
    data.heldOutBytesPerToken > 0.99 && data.heldOutBytesPerToken < 1,
    'bytes: one token per byte plus an EOS per document',
  );
  const baseline = data.unigramBaseline();
  assert.ok(baseline > 2.5 && baseline < 4, `unigram baseline ${baseline} nats/token`);
  assert.ok(bitsPerByte(baseline, data.heldOut.length, data.heldOutTextBytes) > 4);
  const loader = data.createLoader({ seqLen: 64, batchSize: 8, seed: 3 });
  const first = loader.next();
  const again = data.createLoader({ seqLen: 64, batchSize: 8, seed: 3 }).next();
  assert.deepEqual(first, again);
  const held = [...data.heldOutBatches({ seqLen: 64, batchSize: 8, maxBatches: 3 })];
  assert.equal(held.length, 3);
  assert.deepEqual(held[0].inputs.subarray(0, 64), data.heldOut.read(0, 64));
});

test('openTrainingData mixes tokenized directories that share a tokenizer, and refuses others', async () => {
  const root = await mkdtemp(join(tmpdir(), 'andromeda-td-'));
  const text = (tag: string) =>
    Array.from({ length: 30 }, (_, i) => `${tag} document number ${i}. `.repeat(5)).join('\n');
  for (const name of ['books', 'code']) {
    await writeFile(join(root, `${name}.txt`), text(name));
    await tokenizeToDataset({
      inputs: [join(root, `${name}.txt`)],
      tokenizer: 'byte',
      outDir: join(root, name),
      valFraction: 0,
      progress: false,
      log: () => {},
    });
  }
  await tokenizeToDataset({
    inputs: [join(root, 'books.txt')],
    tokenizer: 'bpe:300',
    outDir: join(root, 'bpe'),
    progress: false,
    log: () => {},
  });
  const data = await openTrainingData([
    { dir: join(root, 'books'), weight: 2 },
    { name: 'source-code', dir: join(root, 'code') },
  ]);
  assert.deepEqual(
    data.sources.map((s) => s.name),
    ['books', 'source-code'],
  );
  const batch = data.createLoader({ seqLen: 32, batchSize: 16, seed: 0 }).next();
  assert.ok(batch.sourceIndex.includes(0) && batch.sourceIndex.includes(1));
  data.close();
  await assert.rejects(
    openTrainingData([{ dir: join(root, 'books') }, { dir: join(root, 'bpe') }]),
    /bpe was tokenized with a different tokenizer than .*books/,
  );
});
