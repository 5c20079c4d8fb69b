import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  fillRowMetadata,
  makeBatch,
  packDocuments,
  sequentialBatches,
  tokenizeToArray,
} from '../../src/data/packing.js';
import { Rng } from '../../src/data/random.js';
import { ArrayTokenSource } from '../../src/data/token-source.js';
import { ByteTokenizer } from '../../src/data/tokenizer/index.js';

const EOS = 0;

test('segment ids and positions reset at each EOS, which opens the next segment', () => {
  const row = Int32Array.from([5, 6, EOS, 7, 8, 9, EOS]);
  const batch = makeBatch([row], { seqLen: 6, eosId: EOS });
  assert.deepEqual([...batch.inputs], [5, 6, EOS, 7, 8, 9]);
  assert.deepEqual([...batch.targets], [6, EOS, 7, 8, 9, EOS]);
  assert.deepEqual([...batch.segmentIds], [0, 0, 1, 1, 1, 1]);
  assert.deepEqual([...batch.positions], [0, 1, 0, 1, 2, 3]);
  assert.deepEqual([...batch.tokens], [...row]);

  const startsWithEos = makeBatch([Int32Array.from([EOS, 3, EOS, EOS, 4])], { seqLen: 4, eosId: EOS });
  assert.deepEqual([...startsWithEos.segmentIds], [0, 0, 1, 2]);
  assert.deepEqual([...startsWithEos.positions], [0, 1, 0, 0]);

  const flat = makeBatch([row], { seqLen: 6, eosId: EOS, segments: false });
  assert.deepEqual([...flat.segmentIds], [0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...flat.positions], [0, 1, 2, 3, 4, 5]);
});

test('property: segments change exactly at EOS inputs and positions count from the segment start', () => {
  const rng = new Rng(5);
  for (let trial = 0; trial < 300; trial++) {
    const seqLen = 1 + rng.nextInt(40);
    const row = Int32Array.from({ length: seqLen + 1 }, () => (rng.nextInt(4) === 0 ? EOS : 1 + rng.nextInt(9)));
    const segmentIds = new Int32Array(seqLen);
    const positions = new Int32Array(seqLen);
    fillRowMetadata(row, seqLen, EOS, true, segmentIds, positions);
    let start = 0;
    for (let t = 0; t < seqLen; t++) {
      if (t > 0 && row[t] === EOS) start = t;
      assert.equal(segmentIds[t] - (t > 0 ? segmentIds[t - 1] : 0), t > 0 && row[t] === EOS ? 1 : 0);
      assert.equal(positions[t], t - start);
    }
  }
});

test('packDocuments joins documents with EOS into overlapping rows, matching sequentialBatches', async () => {
  const docs = [
    [1, 2, 3],
    [4, 5],
    [6, 7, 8, 9],
  ];
  const rows: number[][] = [];
  for await (const row of packDocuments(docs, { seqLen: 4, eosId: EOS })) rows.push([...row]);
  assert.deepEqual(rows, [
    [1, 2, 3, EOS, 4],
    [4, 5, EOS, 6, 7],
  ]);

  const stream = Int32Array.from([1, 2, 3, EOS, 4, 5, EOS, 6, 7, 8, 9, EOS]);
  const batches = [...sequentialBatches(new ArrayTokenSource(stream), { seqLen: 4, eosId: EOS, batchSize: 5 })];
  assert.equal(batches.length, 1);
  assert.equal(batches[0].batchSize, 2);
  assert.deepEqual([...batches[0].tokens], rows.flat());
});

test('sequentialBatches covers every target once, with an optional smaller last batch', () => {
  const stream = Int32Array.from({ length: 101 }, (_, i) => i);
  const batches = [...sequentialBatches(new ArrayTokenSource(stream), { seqLen: 10, eosId: 999, batchSize: 3 })];
  assert.deepEqual(
    batches.map((b) => b.batchSize),
    [3, 3, 3, 1],
  );
  assert.deepEqual(
    batches.flatMap((b) => [...b.targets]),
    Array.from({ length: 100 }, (_, i) => i + 1),
  );
  assert.equal(
    [...sequentialBatches(new ArrayTokenSource(stream), { seqLen: 10, eosId: 999, batchSize: 3, dropLast: true })]
      .length,
    3,
  );
});

test('tokenizeToArray appends EOS to each document and counts UTF-8 bytes', async () => {
  const tokenizer = new ByteTokenizer();
  const result = await tokenizeToArray(
    [
      { id: 'a', text: 'hé' },
      { id: 'b', text: '' },
    ],
    tokenizer,
  );
  assert.deepEqual([...result.tokens], [0x68, 0xc3, 0xa9, 256, 256]);
  assert.equal(result.documents, 2);
  assert.equal(result.textBytes, 3);
});
