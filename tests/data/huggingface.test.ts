import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/data/random.js';
import { HuggingFaceTokenizer, trainBpe } from '../../src/data/tokenizer/index.js';
import { compilePattern, splitByPattern } from '../../src/data/tokenizer/pretokenize.js';
import { byteToUnicodeTable } from '../../src/data/tokenizer/utf8.js';
import { randomBytes, randomText } from './random-text.js';

const LLAMA3_PATTERN =
  String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|` +
  String.raw`\s*[\r\n]+|\s+(?!\S)|\s+`;

/** A GPT-2 style tokenizer.json written by hand: ids 0-255 are bytes, four merges, one added token. */
function handWrittenTokenizerJson(mergeStyle: 'strings' | 'pairs' = 'strings'): Record<string, unknown> {
  const table = byteToUnicodeTable();
  const vocab: Record<string, number> = {};
  table.forEach((ch, byte) => (vocab[ch] = byte));
  Object.assign(vocab, { Ġt: 256, he: 257, Ġthe: 258, the: 259 });
  const merges = [
    ['Ġ', 't'],
    ['h', 'e'],
    ['Ġt', 'he'],
    ['t', 'he'],
  ];
  return {
    version: '1.0',
    added_tokens: [{ id: 260, content: '<|endoftext|>', special: true, normalized: false }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', vocab, merges: mergeStyle === 'strings' ? merges.map((m) => m.join(' ')) : merges },
  };
}

test('the ByteLevel alphabet matches GPT-2 (space Ġ, newline Ċ, tab ĉ)', () => {
  const table = byteToUnicodeTable();
  assert.equal(table[0x20], 'Ġ');
  assert.equal(table[0x0a], 'Ċ');
  assert.equal(table[0x09], 'ĉ');
  assert.equal(table[0x41], 'A');
  assert.equal(new Set(table).size, 256);
});

test('hand-written tokenizer.json: merges applied by rank, added tokens, round trips', () => {
  for (const style of ['strings', 'pairs'] as const) {
    const tokenizer = HuggingFaceTokenizer.fromJSON(handWrittenTokenizerJson(style));
    assert.equal(tokenizer.vocabSize, 261);
    assert.equal(tokenizer.eosId, 260);
    assert.deepEqual([...tokenizer.encode('the the')], [259, 258]);
    assert.deepEqual([...tokenizer.encode('x<|endoftext|>', { allowSpecial: true })], [120, 260]);
    assert.equal(tokenizer.decode([258, 260]), ' the<|endoftext|>');
  }
  const tokenizer = HuggingFaceTokenizer.fromJSON(handWrittenTokenizerJson());
  const rng = new Rng(7);
  for (let i = 0; i < 200; i++) {
    const text = randomText(rng);
    assert.equal(tokenizer.decode(tokenizer.encode(text)), text);
    const bytes = randomBytes(rng);
    assert.deepEqual(tokenizer.decodeBytes(tokenizer.encodeBytes(bytes)), bytes);
  }
});

test('a trained BPE exported as tokenizer.json encodes identically when loaded back', async () => {
  const rng = new Rng(11);
  const docs = Array.from({ length: 60 }, () => randomText(rng, 60));
  const bpe = await trainBpe(docs, { vocabSize: 600 });
  const hf = HuggingFaceTokenizer.fromJSON(JSON.parse(JSON.stringify(bpe.toJSON())));
  assert.equal(hf.vocabSize, bpe.vocabSize);
  assert.equal(hf.eosId, bpe.eosId);
  for (let i = 0; i < 150; i++) {
    const text = randomText(rng);
    assert.deepEqual(hf.encode(text), bpe.encode(text));
  }
});

test('Split pre-tokenizer with a Rust-style (?i:...) group (Llama 3 pattern)', () => {
  const pieces = splitByPattern("I'M HERE, it's 12345 ok\n\n", compilePattern(LLAMA3_PATTERN));
  assert.deepEqual(pieces, ['I', "'M", ' HERE', ',', ' it', "'s", ' ', '123', '45', ' ok', '\n\n']);
  const json = handWrittenTokenizerJson();
  json.pre_tokenizer = {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: LLAMA3_PATTERN }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  };
  const tokenizer = HuggingFaceTokenizer.fromJSON(json);
  assert.deepEqual([...tokenizer.encode('the the')], [259, 258]);
});

test('ignore_merges and add_prefix_space follow Hugging Face semantics', () => {
  const json = handWrittenTokenizerJson();
  const vocab = (json.model as { vocab: Record<string, number> }).vocab;
  vocab['Ġxyz'] = 261; // reachable only as a whole word: no merges build it
  (json.model as Record<string, unknown>).ignore_merges = true;
  json.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: true, use_regex: true };
  const tokenizer = HuggingFaceTokenizer.fromJSON(json);
  assert.deepEqual([...tokenizer.encode('xyz the')], [261, 258]);
});

test('unsupported or broken tokenizer.json files are rejected with the reason', () => {
  const noByte = handWrittenTokenizerJson();
  delete (noByte.model as { vocab: Record<string, number> }).vocab['Ġ'];
  assert.throws(
    () => HuggingFaceTokenizer.fromJSON(noByte, { source: 'x.json' }),
    /x\.json: vocab lacks the single-byte token for byte 0x20/,
  );
  const badMerge = handWrittenTokenizerJson();
  (badMerge.model as { merges: string[] }).merges.push('q zz');
  assert.throws(() => HuggingFaceTokenizer.fromJSON(badMerge), /merge 4 "q zz" uses a token missing from vocab/);
  const noEos = handWrittenTokenizerJson();
  noEos.added_tokens = [];
  assert.throws(() => HuggingFaceTokenizer.fromJSON(noEos), /no end-of-document token found/);
  assert.throws(
    () => HuggingFaceTokenizer.fromJSON(handWrittenTokenizerJson(), { eosToken: '</s>' }),
    /"<\/s>" is not an added token/,
  );
  const scripts = handWrittenTokenizerJson();
  scripts.pre_tokenizer = { type: 'UnicodeScripts' };
  assert.throws(() => HuggingFaceTokenizer.fromJSON(scripts), /pre-tokenizer "UnicodeScripts" is not supported/);
  const unigram = handWrittenTokenizerJson();
  (unigram.model as Record<string, unknown>).type = 'Unigram';
  assert.throws(() => HuggingFaceTokenizer.fromJSON(unigram), /model type "Unigram" is not supported \(only BPE\)/);
});
