import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenTextStream } from '../../src/inference/text-stream.js';
import { ByteTokenizer } from '../../src/data/tokenizer/byte.js';
import { trainBpe } from '../../src/data/tokenizer/bpe-train.js';

test('multi-byte characters split across byte tokens are written whole, in order', () => {
  const tokenizer = new ByteTokenizer();
  const text = 'Naïve café — 🐋 漢字!';
  const chunks: string[] = [];
  const stream = new TokenTextStream(tokenizer, (t) => chunks.push(t));
  const ids = tokenizer.encode(text);
  const emitted = Array.from(ids, (id) => stream.push(id));
  stream.flush();
  assert.equal(chunks.join(''), text);
  assert.equal(stream.value, text);
  for (const c of chunks) assert.doesNotMatch(c, /\uFFFD/, 'never a replacement character mid-stream');
  // The 4 bytes of the whale emoji produce nothing until the last one.
  const whale = Buffer.from('🐋');
  const start = Buffer.from(text).indexOf(whale);
  assert.deepEqual(emitted.slice(start, start + 4), ['', '', '', '🐋']);
});

test('a stream ending inside a character flushes U+FFFD, like decode', () => {
  const tokenizer = new ByteTokenizer();
  const bytes = Buffer.from('ab🐋').subarray(0, 4); // "ab" + first 2 bytes of the emoji
  const stream = new TokenTextStream(tokenizer);
  for (const id of tokenizer.encodeBytes(bytes)) stream.push(id);
  stream.flush();
  assert.equal(stream.value, tokenizer.decode(tokenizer.encodeBytes(bytes)));
  assert.ok(stream.value.startsWith('ab') && stream.value.includes('\uFFFD'));
});

test('BPE tokens that straddle characters stream to the same text as decode', async () => {
  const corpus = ['héllo wörld 🐋🐋 漢字漢字 ', 'naïve naïve café café '].map((s) => s.repeat(20));
  const tokenizer = await trainBpe(
    (async function* () {
      yield* corpus;
    })(),
    { vocabSize: 320 },
  );
  const text = 'wörld café 🐋 漢字 naïve';
  const stream = new TokenTextStream(tokenizer);
  for (const id of tokenizer.encode(text)) stream.push(id);
  stream.flush();
  assert.equal(stream.value, text);
});
