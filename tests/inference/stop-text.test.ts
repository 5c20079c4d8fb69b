import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StopTextFilter } from '../../src/inference/stop-text.js';
import type { Tokenizer } from '../../src/data/tokenizer/tokenizer.js';

/** A tokenizer whose ids stand for whole strings (only tokenBytes is used by the filter). */
function pieces(table: string[]): Tokenizer {
  return { tokenBytes: (id: number) => new TextEncoder().encode(table[id]!) } as unknown as Tokenizer;
}

function run(table: string[], ids: number[], stops: string[]) {
  const filter = new StopTextFilter(pieces(table), stops);
  const out: string[] = [];
  for (const id of ids) {
    const piece = filter.push(id);
    out.push(piece.text);
    if (piece.stopped) return { out, stopped: true, text: filter.text };
  }
  out.push(filter.finish().text);
  return { out, stopped: false, text: filter.text };
}

test('a stop string that ends inside a token cuts the text before it', () => {
  const r = run(['Hello wor', 'ld! Bye', 'x'], [0, 1, 2], ['world']);
  assert.equal(r.stopped, true);
  assert.equal(r.text, 'Hello ');
  assert.deepEqual(r.out, ['Hello ', ''], '"wor" waited for the next token');
});

test('a stop string spanning three tokens; the earliest of several stop strings wins', () => {
  const r = run(['a<', 'e', 'n', 'd>b'], [0, 1, 2, 3], ['nd>', '<end>']);
  assert.equal(r.text, 'a');
  assert.equal(r.stopped, true);
});

test('held-back text is released when it turns out not to be a stop string, and at the end', () => {
  const r = run(['ab', 'c', 'ab'], [0, 1, 2], ['abd']);
  assert.equal(r.stopped, false);
  assert.deepEqual(r.out, ['', 'abc', '', 'ab']);
  assert.equal(r.text, 'abcab');
  assert.throws(() => new StopTextFilter(pieces([]), ['']), /must not be empty/);
});
