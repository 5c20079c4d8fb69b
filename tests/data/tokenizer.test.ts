import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/data/random.js';
import {
  BpeTokenizer,
  ByteTokenizer,
  loadTokenizer,
  trainBpe,
  type Tokenizer,
} from '../../src/data/tokenizer/index.js';
import { splitUtf8Runs } from '../../src/data/tokenizer/utf8.js';
import { randomBytes, randomText } from './random-text.js';

const TRAINING_TEXT = [
  'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse,',
  'and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of ' +
    'the world.',
  'function add(a, b) { return a + b; }\nconst total = add(1, 2);\n',
  'It is a way I have of driving off the spleen and regulating the circulation. Whenever I find myself growing grim ' +
    'about the mouth;',
].join('\n');

function assertRoundTrips(tokenizer: Tokenizer, cases: number, seed: number): void {
  const rng = new Rng(seed);
  for (let i = 0; i < cases; i++) {
    const text = randomText(rng);
    const ids = tokenizer.encode(text);
    for (const id of ids) assert.ok(id >= 0 && id < tokenizer.vocabSize, `id ${id} out of range`);
    assert.equal(tokenizer.decode(ids), text, `text round trip failed for ${JSON.stringify(text)}`);
    const bytes = randomBytes(rng);
    assert.deepEqual(
      tokenizer.decodeBytes(tokenizer.encodeBytes(bytes)),
      bytes,
      `byte round trip failed for [${bytes}]`,
    );
  }
}

test('splitUtf8Runs separates well-formed UTF-8 from invalid bytes', () => {
  const bytes = Uint8Array.from([
    0x61, 0xc3, 0xa9, 0xff, 0x80, 0xe2, 0x82, 0x62, 0xf0, 0x9f, 0x98, 0x80, 0xed, 0xa0, 0x80,
  ]);
  const runs = splitUtf8Runs(bytes).map((r) => [r.start, r.end, r.valid]);
  assert.deepEqual(runs, [
    [0, 3, true],
    [3, 7, false],
    [7, 12, true],
    [12, 15, false],
  ]);
});

test('byte tokenizer: ids are bytes, EOS follows, text and bytes round-trip', () => {
  const tokenizer = new ByteTokenizer();
  assert.equal(tokenizer.vocabSize, 257);
  assert.equal(tokenizer.eosId, 256);
  assert.deepEqual([...tokenizer.encode('hé')], [0x68, 0xc3, 0xa9]);
  assert.deepEqual([...tokenizer.encode('a<|endoftext|>', { allowSpecial: true })], [0x61, 256]);
  assert.equal(tokenizer.encode('<|endoftext|>').length, 13, 'special text is plain text unless allowed');
  assertRoundTrips(tokenizer, 300, 1);
});

test('BPE training reduces token count, is deterministic, and round-trips', async () => {
  const tokenizer = await trainBpe([TRAINING_TEXT, TRAINING_TEXT.toUpperCase()], { vocabSize: 256 + 120 + 1 });
  assert.ok(tokenizer.merges.length > 50, `only ${tokenizer.merges.length} merges learned`);
  assert.equal(tokenizer.vocabSize, 256 + tokenizer.merges.length + 1);
  assert.equal(tokenizer.eosId, tokenizer.vocabSize - 1);
  const ids = tokenizer.encode(TRAINING_TEXT);
  const bytes = new TextEncoder().encode(TRAINING_TEXT).length;
  assert.ok(ids.length < bytes * 0.6, `BPE gave ${ids.length} tokens for ${bytes} bytes`);
  assert.equal(tokenizer.decode(ids), TRAINING_TEXT);
  // The most frequent pair in the text is learned first and shows up as a single token.
  assert.equal(new TextDecoder().decode(tokenizer.tokenBytes(256)).length, 2);

  const again = await trainBpe([TRAINING_TEXT, TRAINING_TEXT.toUpperCase()], { vocabSize: 256 + 120 + 1 });
  assert.deepEqual(again.merges, tokenizer.merges);
  assertRoundTrips(tokenizer, 300, 2);
});

test('BPE never merges across pre-tokenization boundaries and stops at minPairCount', async () => {
  const tokenizer = await trainBpe(['ab ab ab ab cd'], { vocabSize: 1000 });
  const pieces = tokenizer.merges.map((_, i) => new TextDecoder().decode(tokenizer.tokenBytes(256 + i)));
  assert.deepEqual(pieces, ['ab', ' ab'], 'pairs seen once (c d, space c) are not merged');
});

test('saved tokenizers load back with identical behaviour', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'andromeda-tok-'));
  const bpe = await trainBpe([TRAINING_TEXT], { vocabSize: 256 + 60 + 2, specialTokens: ['<|endoftext|>', '<|pad|>'] });
  const byte = new ByteTokenizer({ specialTokens: ['<|pad|>', '<|endoftext|>'] });
  for (const tokenizer of [bpe, byte]) {
    const path = join(dir, `${tokenizer.kind}.json`);
    await tokenizer.save(path);
    const loaded = await loadTokenizer(path);
    assert.equal(loaded.kind, 'huggingface'); // saved as Hugging Face's tokenizer.json
    assert.equal(JSON.stringify(loaded.toJSON()), JSON.stringify(tokenizer.toJSON()));
    assert.equal(loaded.vocabSize, tokenizer.vocabSize);
    assert.equal(loaded.eosId, tokenizer.eosId);
    assert.deepEqual(loaded.encode(TRAINING_TEXT), tokenizer.encode(TRAINING_TEXT));
    const withSpecial = TRAINING_TEXT + '<|pad|>x<|endoftext|>';
    assert.deepEqual(
      loaded.encode(withSpecial, { allowSpecial: true }),
      tokenizer.encode(withSpecial, { allowSpecial: true }),
    );
    assert.equal(loaded.decode(tokenizer.encode(withSpecial)), withSpecial);
  }
  assert.equal(byte.eosId, 257);
});

test('tokenizer file errors name the file and the problem', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'andromeda-tok-'));
  await assert.rejects(loadTokenizer(join(dir, 'nope.json')), /tokenizer file not found: .*nope\.json/);
  await writeFile(join(dir, 'bad.json'), '{ not json');
  await assert.rejects(loadTokenizer(join(dir, 'bad.json')), /bad\.json: not valid JSON/);
  await writeFile(
    join(dir, 'bad-merge.json'),
    JSON.stringify({
      format: 'andromeda-tokenizer',
      version: 1,
      type: 'bpe',
      pattern: 'x',
      merges: [300, 1],
      specialTokens: [{ content: '<|endoftext|>', id: 257 }],
      eosToken: '<|endoftext|>',
    }),
  );
  await assert.rejects(
    loadTokenizer(join(dir, 'bad-merge.json')),
    /merge 0 \(300, 1\) refers to an id not defined before it/,
  );
  await writeFile(join(dir, 'wordpiece.json'), JSON.stringify({ model: { type: 'WordPiece', vocab: {} } }));
  await assert.rejects(
    loadTokenizer(join(dir, 'wordpiece.json')),
    /wordpiece\.json: model type "WordPiece" is not supported/,
  );
});

test('BPE encodes long repetitive pieces quickly', () => {
  const tokenizer = new BpeTokenizer({
    merges: [
      [32, 32],
      [256, 256],
      [257, 257],
    ],
  });
  const text = ' '.repeat(200_000) + 'x';
  const start = performance.now();
  const ids = tokenizer.encode(text);
  assert.ok(performance.now() - start < 2000);
  // GPT-2's regex leaves the last space for " x": 199,999 spaces = 24,999 eights + 4 + 2 + 1, then " " and "x".
  assert.equal(ids.length, 24_999 + 3 + 2);
  assert.equal(tokenizer.decode(ids), text);
});

test('the byte tokenizer gives every byte its own id, invalid UTF-8 included (no U+FFFD)', () => {
  const tokenizer = new ByteTokenizer();
  const latin1 = Uint8Array.of(0x43, 0x61, 0x66, 0xe9);
  assert.deepEqual(Array.from(tokenizer.encodeBytes(latin1)), [0x43, 0x61, 0x66, 0xe9]);
  const every = Uint8Array.from({ length: 256 }, (_, b) => 255 - b);
  assert.deepEqual(Array.from(tokenizer.encodeBytes(every)), Array.from(every));
  assert.deepEqual(tokenizer.decodeBytes(tokenizer.encodeBytes(every)), every);
  // Strings hold no invalid UTF-8; a lone surrogate is encoded as U+FFFD, as documented on `encode`.
  assert.deepEqual(Array.from(tokenizer.encode('a\ud800')), [0x61, 0xef, 0xbf, 0xbd]);
});
