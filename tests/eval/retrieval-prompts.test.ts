import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteTokenizer } from '../../src/data/tokenizer/byte.js';
import {
  PASSKEY_FILLER,
  PASSKEY_INTRO,
  isCorrectAnswer,
  needlePrompt,
  passkeyPrompt,
  randomNumber,
  splitSentences,
} from '../../src/eval/retrieval-prompts.js';
import { Rng } from '../../src/data/random.js';

const tokenizer = new ByteTokenizer();
const text = (ids: Int32Array): string => tokenizer.decode(ids);

test('a passkey prompt fills its length with whole sentences and hides the key where asked', () => {
  for (const length of [300, 1000, 4096]) {
    for (const depth of [0, 0.3, 0.5, 1]) {
      const p = passkeyPrompt({ tokenizer, length, depth, seed: 7 });
      assert.ok(p.tokens.length <= length, `${p.tokens.length} ≤ ${length}`);
      assert.ok(p.tokens.length > length - PASSKEY_FILLER.length, 'no room left for another filler sentence');
      const s = text(p.tokens);
      assert.ok(s.startsWith(PASSKEY_INTRO));
      assert.ok(s.endsWith('\nWhat is the pass key? The pass key is'));
      assert.match(p.answer, /^[1-9]\d{4}$/);
      assert.ok(text(p.tokens.subarray(p.factPosition)).startsWith(`The pass key is ${p.answer}. Remember it.`));
      // The key sits between whole filler sentences, within one sentence of the asked-for depth.
      const fact = `The pass key is ${p.answer}. Remember it. ${p.answer} is the pass key. `;
      const question = '\nWhat is the pass key? The pass key is';
      const filler = p.tokens.length - PASSKEY_INTRO.length - fact.length - question.length;
      const before = p.factPosition - PASSKEY_INTRO.length;
      assert.equal(before % PASSKEY_FILLER.length, 0);
      assert.ok(Math.abs(before - depth * filler) <= PASSKEY_FILLER.length, `depth ${depth}: ${before} of ${filler}`);
    }
  }
});

test('depth 0 puts the key right after the intro, depth 1 right before the question', () => {
  const first = passkeyPrompt({ tokenizer, length: 800, depth: 0, seed: 1 });
  assert.equal(first.factPosition, PASSKEY_INTRO.length);
  const last = passkeyPrompt({ tokenizer, length: 800, depth: 1, seed: 1 });
  assert.ok(text(last.tokens).endsWith(`${last.answer} is the pass key. \nWhat is the pass key? The pass key is`));
});

test('seeds give different keys, the same seed the same prompt; too short a length is refused', () => {
  const keys = new Set(
    Array.from({ length: 20 }, (_, seed) => passkeyPrompt({ tokenizer, length: 400, depth: 0.5, seed }).answer),
  );
  assert.ok(keys.size >= 18, `${keys.size} distinct keys of 20`);
  assert.deepEqual(
    passkeyPrompt({ tokenizer, length: 400, depth: 0.5, seed: 3 }).tokens,
    passkeyPrompt({ tokenizer, length: 400, depth: 0.5, seed: 3 }).tokens,
  );
  assert.throws(
    () => passkeyPrompt({ tokenizer, length: 100, depth: 0.5, seed: 0 }),
    /shorter than the prompt without filler/,
  );
  assert.throws(() => passkeyPrompt({ tokenizer, length: 400, depth: 1.5, seed: 0 }), /depth must be in \[0, 1\]/);
  const rng = new Rng(5);
  for (let i = 0; i < 50; i++) assert.match(randomNumber(rng, 7), /^[1-9]\d{6}$/);
});

test('a needle prompt hides a keyed number in the haystack and asks for that key', () => {
  const haystack =
    'Call me Ishmael. Some years ago I went to sea! Why not? It is a way I have of driving off the spleen.';
  assert.deepEqual(splitSentences(haystack), [
    'Call me Ishmael. ',
    'Some years ago I went to sea! ',
    'Why not? ',
    'It is a way I have of driving off the spleen.',
  ]);
  const p = needlePrompt({ tokenizer, length: 1200, depth: 0.5, seed: 2, haystack });
  const s = text(p.tokens);
  assert.ok(p.tokens.length <= 1200 && p.tokens.length > 1100);
  assert.match(p.answer, /^[1-9]\d{6}$/);
  const fact = /One of the special magic numbers for (\w+) is: (\d+)\. /.exec(s);
  assert.ok(fact, s);
  assert.equal(fact[2], p.answer);
  assert.ok(s.endsWith(`The special magic number for ${fact[1]} mentioned in the provided text is`));
  assert.equal(s.indexOf(fact[0]), p.factPosition);
  const question = s.slice(s.lastIndexOf('\nWhat is the special magic number'));
  const filler = s.length - fact[0].length - question.length;
  const longestSentence = Math.max(...splitSentences(haystack).map((x) => x.length));
  assert.ok(Math.abs(p.factPosition - filler / 2) <= longestSentence, `${p.factPosition} of ${filler}`);
});

test('an answer is right only when the continuation gives exactly the number', () => {
  assert.ok(isCorrectAnswer(' 48291', '48291'));
  assert.ok(isCorrectAnswer(' 48291. Remember', '48291'));
  assert.ok(isCorrectAnswer('48291\n', '48291'));
  assert.ok(!isCorrectAnswer(' 482910', '48291'));
  assert.ok(!isCorrectAnswer(' 4829', '48291'));
  assert.ok(!isCorrectAnswer(' 48292', '48291'));
  assert.ok(!isCorrectAnswer(' the 48291', '48291'));
  assert.ok(!isCorrectAnswer('', '48291'));
});
