import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, truncate, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SplitWriter,
  TokenDataset,
  writeDatasetManifest,
  DATASET_FORMAT,
  DATASET_VERSION,
} from '../../src/data/dataset.js';
import { Rng } from '../../src/data/random.js';
import { ShardSequence, TokenShard, TokenShardWriter, SHARD_HEADER_BYTES } from '../../src/data/shards.js';
import { ByteTokenizer } from '../../src/data/tokenizer/index.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'andromeda-shard-'));
}

function writeShard(path: string, tokens: number[], vocabSize = 1000, eosId = 999): void {
  const writer = new TokenShardWriter(path, {
    dtype: vocabSize <= 65536 ? 'uint16' : 'uint32',
    vocabSize,
    eosId,
    bufferTokens: 7,
  });
  writer.write(tokens);
  writer.close();
}

test('uint16 and uint32 shards round-trip with header fields, read by offset', async () => {
  const dir = await tempDir();
  const rng = new Rng(3);
  for (const vocabSize of [300, 70_000]) {
    const eosId = vocabSize - 1;
    const tokens = Array.from({ length: 1000 }, () => rng.nextInt(vocabSize));
    tokens[10] = eosId;
    tokens[999] = eosId;
    const path = join(dir, `s${vocabSize}.bin`);
    writeShard(path, tokens, vocabSize, eosId);
    const shard = TokenShard.open(path);
    assert.equal(shard.header.dtype, vocabSize === 300 ? 'uint16' : 'uint32');
    assert.equal(shard.length, 1000);
    assert.equal(shard.header.documentCount, tokens.filter((t) => t === eosId).length);
    assert.deepEqual([...shard.read(0, 1000)], tokens);
    assert.deepEqual([...shard.read(123, 45)], tokens.slice(123, 168));
    assert.throws(() => shard.read(990, 11), /cannot read tokens \[990, 1001\) from shard .* of 1000 tokens/);
    shard.verify();
    shard.close();
  }
});

test('a split is written as fixed-size shards that read back as one stream', async () => {
  const dir = await tempDir();
  const writer = new SplitWriter(dir, 'train', { vocabSize: 300, eosId: 299, shardTokens: 10 });
  const docs = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [15], []];
  for (const d of docs) writer.writeDocument(Int32Array.from(d), d.length * 2);
  const manifest = writer.finish();
  const stream = docs.flatMap((d) => [...d, 299]);
  assert.equal(manifest.tokens, stream.length);
  assert.equal(manifest.documents, 4);
  assert.equal(manifest.textBytes, 30);
  assert.deepEqual(
    manifest.shards.map((s) => [s.file, s.tokens, s.documents]),
    [
      ['train-00000.bin', 10, 1],
      ['train-00001.bin', 9, 3],
    ],
  );
  const sequence = ShardSequence.open(manifest.shards.map((s) => join(dir, s.file)));
  assert.deepEqual([...sequence.read(0, stream.length)], stream);
  assert.deepEqual([...sequence.read(8, 5)], stream.slice(8, 13));
  sequence.close();
});

test('TokenDataset opens a directory written with a manifest and tokenizer', async () => {
  const dir = await tempDir();
  const tokenizer = new ByteTokenizer();
  await tokenizer.save(join(dir, 'tokenizer.json'));
  const splits: Record<string, ReturnType<SplitWriter['finish']>> = {};
  for (const [name, text] of [
    ['train', 'hello world'],
    ['val', 'bye'],
  ] as const) {
    const w = new SplitWriter(dir, name, { vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId, shardTokens: 4 });
    w.writeDocument(tokenizer.encode(text), text.length);
    splits[name] = w.finish();
  }
  await writeDatasetManifest(dir, {
    format: DATASET_FORMAT,
    version: DATASET_VERSION,
    tokenizer: 'tokenizer.json',
    vocabSize: 257,
    eosId: 256,
    dtype: 'uint16',
    splits,
    inputs: ['test'],
  });
  const dataset = await TokenDataset.open(dir);
  assert.equal(tokenizer.decode(dataset.split('val').read(0, 4)), 'bye<|endoftext|>');
  assert.equal(dataset.split('train').length, 12);
  dataset.verify();
  assert.throws(() => dataset.split('test'), /has no "test" split \(it has: train, val\)/);
  dataset.close();
  await assert.rejects(TokenDataset.open(join(dir, 'missing')), /is not a tokenized dataset \(no dataset\.json\)/);
});

test('corrupt and truncated shards are reported with the file and the problem', async () => {
  const dir = await tempDir();
  const good = join(dir, 'good.bin');
  writeShard(good, [1, 2, 3, 999, 4, 5]);
  const bytes = await readFile(good);

  const badMagic = join(dir, 'magic.bin');
  await writeFile(badMagic, Buffer.concat([Buffer.from('NOTASHRD'), bytes.subarray(8)]));
  assert.throws(
    () => TokenShard.open(badMagic),
    new RegExp(`token shard ${badMagic} is corrupt: bad magic "NOTASHRD"`),
  );

  const truncated = join(dir, 'truncated.bin');
  await writeFile(truncated, bytes);
  await truncate(truncated, bytes.length - 3);
  assert.throws(
    () => TokenShard.open(truncated),
    /truncated\.bin is corrupt: truncated: header says 6 tokens \(76 bytes\) but the file has 73 bytes/,
  );

  const tiny = join(dir, 'tiny.bin');
  await writeFile(tiny, bytes.subarray(0, 20));
  assert.throws(
    () => TokenShard.open(tiny),
    /tiny\.bin is corrupt: file has 20 bytes, shorter than the 64-byte header/,
  );

  const extra = join(dir, 'extra.bin');
  await writeFile(extra, bytes);
  await appendFile(extra, Buffer.from([0, 0]));
  assert.throws(() => TokenShard.open(extra), /extra\.bin is corrupt: file has 2 bytes past the 6 tokens/);

  const version = join(dir, 'version.bin');
  const v = Buffer.from(bytes);
  v.writeUInt32LE(9, 8);
  await writeFile(version, v);
  assert.throws(() => TokenShard.open(version), /version\.bin is corrupt: format version 9 is not supported/);

  const flipped = join(dir, 'flipped.bin');
  const f = Buffer.from(bytes);
  f[SHARD_HEADER_BYTES + 2] ^= 0x01;
  await writeFile(flipped, f);
  const shard = TokenShard.open(flipped); // header and size are fine; only the checksum can tell
  assert.throws(() => shard.verify(), /flipped\.bin is corrupt: checksum mismatch/);
  shard.close();

  assert.throws(() => TokenShard.open(join(dir, 'absent.bin')), /token shard not found: .*absent\.bin/);
});

test('writing an id outside the vocabulary fails loudly', async () => {
  const dir = await tempDir();
  assert.throws(() => writeShard(join(dir, 'x.bin'), [1, 1000]), /token id 1000 outside the vocabulary \[0, 1000\)/);
});
