// Token-for-token parity with the Hugging Face `tokenizers` library, on the fixtures that
// scripts/fixtures/make-tokenizer-fixtures.py made with it (tests/fixtures/tokenizers/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { HuggingFaceTokenizer } from '../../src/data/tokenizer/index.js';

const FIXTURES = fileURLToPath(new URL('../../../tests/fixtures/tokenizers/', import.meta.url));

interface Expected {
  ids: number[];
  idsWithSpecial: number[];
  decoded: string;
  decodedSkipSpecial: string;
}

/** The end-of-document token of each fixture tokenizer (the features one has none of the usual names). */
const FIXTURE_TOKENIZERS: Record<string, string | undefined> = {
  llama3: undefined,
  llama2: undefined,
  mistral: undefined,
  qwen2: undefined,
  features: '<sep>',
  phi3: undefined,
  gemma: undefined,
};

const manifestPath = join(FIXTURES, 'manifest.json');
const missing = existsSync(manifestPath)
  ? false
  : 'tokenizer fixtures not made yet: run python3 scripts/fixtures/make-tokenizer-fixtures.py (needs tokenizers)';

function readGzipJson<T>(name: string): T {
  return JSON.parse(gunzipSync(readFileSync(join(FIXTURES, name))).toString('utf8')) as T;
}

/** The first position where two id lists differ, with context, for a readable failure. */
function firstDifference(actual: ArrayLike<number>, expected: number[]): string {
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  const window = (ids: ArrayLike<number>) => JSON.stringify(Array.from(ids).slice(Math.max(0, i - 3), i + 5));
  return `at token ${i}: got ${window(actual)}, tokenizers gives ${window(expected)}`;
}

for (const [name, eosToken] of Object.entries(FIXTURE_TOKENIZERS)) {
  test(`${name}: ids and decodes equal the tokenizers library's over the whole corpus`, { skip: missing }, () => {
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    const documents = readGzipJson<string[]>('corpus.json.gz');
    const expected = readGzipJson<Expected[]>(`${name}.expected.json.gz`);
    assert.equal(expected.length, documents.length);
    const json = JSON.parse(readFileSync(join(FIXTURES, `${name}.tokenizer.json`), 'utf8'));
    const tokenizer = HuggingFaceTokenizer.fromJSON(json, { eosToken, source: `${name}.tokenizer.json` });

    const mismatches: string[] = [];
    let tokens = 0;
    documents.forEach((doc, i) => {
      const want = expected[i];
      const plain = tokenizer.encode(doc, { allowSpecial: true });
      const withSpecial = tokenizer.encode(doc, { allowSpecial: true, addSpecialTokens: true });
      tokens += plain.length;
      const where = `document ${i} ${JSON.stringify(doc.slice(0, 60))}`;
      if (plain.join() !== want.ids.join()) mismatches.push(`${where}: ids ${firstDifference(plain, want.ids)}`);
      if (withSpecial.join() !== want.idsWithSpecial.join())
        mismatches.push(`${where}: ids with special tokens ${firstDifference(withSpecial, want.idsWithSpecial)}`);
      const decoded = tokenizer.decode(want.idsWithSpecial);
      if (decoded !== want.decoded)
        mismatches.push(`${where}: decode ${JSON.stringify(decoded)} ≠ ${JSON.stringify(want.decoded)}`);
      const skipped = tokenizer.decode(want.idsWithSpecial, { skipSpecialTokens: true });
      if (skipped !== want.decodedSkipSpecial)
        mismatches.push(
          `${where}: decode (skip special) ${JSON.stringify(skipped)} ≠ ${JSON.stringify(want.decodedSkipSpecial)}`,
        );
    });
    assert.equal(tokens, manifest.tokenizers[name].tokens, 'token count differs from the manifest');
    assert.ok(tokens >= 100_000, `${name}: only ${tokens} tokens in the corpus; the bar is 100k`);
    assert.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} mismatches over ${documents.length} documents`);
  });
}
