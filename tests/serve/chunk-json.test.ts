import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkJson } from '../../src/serve/chunk-json.js';

const TEXTS = [
  '',
  'plain words',
  'quotes " and \\ backslashes',
  'controls \u0000\u0001\u001f\n\r\t and DEL \u007f',
  'line separators \u2028\u2029',
  'multi-byte: café 漢字 🐋',
  '{"looks":"like JSON"},',
  '\uFFFD',
];

test('a chunk serialized around its text is byte for byte the JSON of the chunk with that text', () => {
  const base = { id: 'cmpl-0123', object: 'text_completion', created: 1_700_000_000, model: 'tiny "model" \u0000' };
  const build = (text: string) => ({
    ...base,
    choices: [{ index: 2, text, logprobs: null, finish_reason: null }],
    usage: null,
  });
  const chunks = new ChunkJson(build);
  for (const text of TEXTS) assert.equal(chunks.of(text), JSON.stringify(build(text)), JSON.stringify(text));
  const delta = (content: string) => ({ ...base, choices: [{ index: 0, delta: { content } }] });
  const deltas = new ChunkJson(delta);
  for (const text of TEXTS) assert.equal(deltas.of(text), JSON.stringify(delta(text)));
});

test('a chunk whose text stands in more than one place is serialized whole, still right', () => {
  const twice = (text: string) => ({ text, echo: text });
  const chunks = new ChunkJson(twice);
  for (const text of TEXTS) assert.equal(chunks.of(text), JSON.stringify(twice(text)));
});
