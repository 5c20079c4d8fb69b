import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SplitWriter } from '../../src/data/dataset.js';
import { MixtureLoader, type MixtureLoaderOptions, type MixtureBatch } from '../../src/data/mixture.js';
import { ShardSequence } from '../../src/data/shards.js';
import { ArrayTokenSource } from '../../src/data/token-source.js';

const EOS = 999;

/** A stream whose token values identify the source (hundreds digit) and position. */
function stream(sourceTag: number, length: number): ArrayTokenSource {
  return new ArrayTokenSource(
    Int32Array.from({ length }, (_, i) => (i % 17 === 16 ? EOS : sourceTag * 100 + (i % 97))),
  );
}

function options(seed: number, overrides: Partial<MixtureLoaderOptions> = {}): MixtureLoaderOptions {
  return {
    sources: [
      { name: 'books', tokens: stream(1, 5000), weight: 3 },
      { name: 'code', tokens: stream(2, 400), weight: 1 },
    ],
    seqLen: 16,
    batchSize: 4,
    eosId: EOS,
    seed,
    ...overrides,
  };
}

function take(loader: MixtureLoader, n: number): MixtureBatch[] {
  return Array.from({ length: n }, () => loader.next());
}

test('the same seed gives the same batches; another seed does not', () => {
  const a = take(new MixtureLoader(options(42)), 30);
  const b = take(new MixtureLoader(options(42)), 30);
  const c = take(new MixtureLoader(options(43)), 30);
  assert.deepEqual(a, b);
  assert.notDeepEqual(
    a.map((x) => [...x.tokens]),
    c.map((x) => [...x.tokens]),
  );
});

test('sources are drawn in proportion to their weights', () => {
  const loader = new MixtureLoader(options(1));
  const counts = [0, 0];
  for (const batch of take(loader, 500)) for (const s of batch.sourceIndex) counts[s]++;
  const fraction = counts[0] / (counts[0] + counts[1]);
  assert.ok(Math.abs(fraction - 0.75) < 0.04, `books fraction ${fraction}`);
});

test('rows come from the chosen source, have segment metadata, and a small source repeats over epochs', () => {
  const loader = new MixtureLoader(options(2));
  const seenCodeRows = new Set<string>();
  let codeRowsFirstEpoch = 0;
  for (const batch of take(loader, 50)) {
    for (let r = 0; r < batch.batchSize; r++) {
      const row = batch.tokens.subarray(r * 17, r * 17 + 17);
      const tag = batch.sourceIndex[r] + 1;
      for (const t of row) assert.ok(t === EOS || Math.floor(t / 100) === tag);
      if (tag === 2 && codeRowsFirstEpoch < 24) {
        const key = row.join(',');
        assert.ok(!seenCodeRows.has(key), 'a row repeated within one epoch');
        seenCodeRows.add(key);
        codeRowsFirstEpoch++;
      }
    }
    for (let i = 0; i < batch.inputs.length; i++) {
      const t = i % 16;
      if (t > 0 && batch.inputs[i] === EOS) assert.equal(batch.positions[i], 0);
    }
  }
  const epochs = loader.epochs();
  assert.ok(epochs.code > 1.5, `code epochs ${epochs.code}`); // 400 tokens = 24 rows; ~50 of 200 rows drawn are code
  assert.ok(epochs.books < 1);
});

test('resuming from a saved state mid-epoch (and across epoch ends) continues identically', () => {
  for (const stopAt of [0, 1, 7, 25, 60]) {
    const original = new MixtureLoader(options(9));
    take(original, stopAt);
    const saved = JSON.parse(JSON.stringify(original.state()));
    const expected = take(original, 40);
    const resumed = new MixtureLoader(options(9), saved);
    assert.equal(resumed.steps, stopAt);
    assert.deepEqual(take(resumed, 40), expected, `resume after ${stopAt} batches diverged`);
  }
});

test('resuming with different settings or data is refused with the reason', () => {
  const state = new MixtureLoader(options(9)).state();
  assert.throws(
    () => new MixtureLoader(options(10), state),
    /cannot resume the data loader from this state: seed 9 ≠ 10/,
  );
  assert.throws(() => new MixtureLoader(options(9, { seqLen: 32 }), state), /seqLen 16 ≠ 32/);
  const changed = options(9);
  changed.sources = [changed.sources[0], { name: 'code', tokens: stream(2, 401) }];
  assert.throws(() => new MixtureLoader(changed, state), /source "code" had 400 tokens, now 401/);
  assert.throws(
    () => new MixtureLoader(options(9, { sources: [{ name: 'tiny', tokens: stream(1, 10) }] })),
    /"tiny" has 10 tokens, fewer than seqLen \+ 1 = 17/,
  );
});

test('the loader reads straight from token shards', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'andromeda-mix-'));
  const writer = new SplitWriter(dir, 'train', { vocabSize: 1000, eosId: EOS, shardTokens: 100 });
  const docs = Array.from({ length: 40 }, (_, d) => Int32Array.from({ length: 5 + (d % 11) }, (_, i) => 100 + d + i));
  for (const d of docs) writer.writeDocument(d, d.length);
  const manifest = writer.finish();
  const shards = ShardSequence.open(manifest.shards.map((s) => join(dir, s.file)));
  const inMemory = new ArrayTokenSource(shards.read(0, shards.length));
  const fromDisk = take(
    new MixtureLoader({ sources: [{ name: 'x', tokens: shards }], seqLen: 32, batchSize: 3, eosId: EOS, seed: 4 }),
    10,
  );
  const fromMemory = take(
    new MixtureLoader({ sources: [{ name: 'x', tokens: inMemory }], seqLen: 32, batchSize: 3, eosId: EOS, seed: 4 }),
    10,
  );
  assert.deepEqual(fromDisk, fromMemory);
  shards.close();
});
