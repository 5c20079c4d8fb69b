// The context-mixing predictor alone: its logistic tables, that it learns (repeated text gets
// cheap, a match across streams is found), that its predictions depend only on the bits coded so
// far, and that the model's probabilities it is given steer it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ContextMixer } from '../../src/compress/context-mixer.js';
import { PROBABILITY_ONE, squash, stretch, STRETCH_LIMIT } from '../../src/compress/logistic.js';

const enc = new TextEncoder();
const prose =
  'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and ' +
  'nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of ' +
  'the world. ';

/**
 * Codes `data` (split into `streams` streams, stepped side by side as the codec does) and returns
 * the ideal code length in bits of every stream; `modelStretch` is the language model's input.
 */
function codeLengths(
  data: Uint8Array,
  streams: number,
  buffer: Uint8Array = data,
  modelStretch: (offset: number, bitIndex: number) => number = () => 0,
): { bits: number[]; probabilities: number[] } {
  const chunk = Math.ceil(data.length / streams);
  const mixer = new ContextMixer(buffer, { streams, chunk });
  const bits = new Array<number>(streams).fill(0);
  const probabilities: number[] = [];
  for (let t = 0; t < chunk; t++)
    for (let s = 0; s < streams; s++) {
      const offset = s * chunk + t;
      if (t >= Math.min(data.length, (s + 1) * chunk) - s * chunk) continue;
      mixer.beginByte(s);
      for (let i = 7; i >= 0; i--) {
        const bit = (data[offset]! >> i) & 1;
        const p = mixer.predictBit(modelStretch(offset, 7 - i));
        assert.ok(Number.isInteger(p) && p >= 1 && p < PROBABILITY_ONE, `P(1) = ${p} is a 12-bit probability`);
        probabilities.push(p);
        bits[s]! -= Math.log2(bit ? p / PROBABILITY_ONE : 1 - p / PROBABILITY_ONE);
        mixer.updateBit(bit);
      }
      buffer[offset] = data[offset]!;
    }
  return { bits, probabilities };
}

describe('context mixer', () => {
  test('squash is increasing and stretch inverts it', () => {
    let previous = 0;
    for (let d = -STRETCH_LIMIT; d <= STRETCH_LIMIT; d++) {
      const p = squash(d);
      assert.ok(p >= previous, `squash(${d}) = ${p} < squash(${d - 1}) = ${previous}`);
      previous = p;
      assert.equal(squash(stretch(p)), p, `squash(stretch(${p}))`);
    }
    assert.ok(Math.abs(squash(0) - PROBABILITY_ONE / 2) <= 1, `squash(0) = ${squash(0)}`);
    assert.ok(squash(-STRETCH_LIMIT) <= 2 && squash(STRETCH_LIMIT) >= PROBABILITY_ONE - 2);
    assert.ok(stretch(1) < -2000 && stretch(PROBABILITY_ONE - 1) > 2000);
  });

  test('repeated text gets cheap: the second copy costs a small fraction of the first', () => {
    const once = enc.encode(prose);
    const { bits } = codeLengths(enc.encode(prose + prose), 1);
    const firstCopy = codeLengths(once, 1).bits[0]!;
    const secondCopy = bits[0]! - firstCopy;
    assert.ok(firstCopy / once.length > 3, `the first copy costs ${(firstCopy / once.length).toFixed(2)} bits/byte`);
    assert.ok(
      secondCopy < 0.15 * firstCopy,
      `second copy ${secondCopy.toFixed(0)} bits, first ${firstCopy.toFixed(0)}`,
    );
  });

  test('a stream predicts text that another stream has already coded (shared tables, cross-stream match)', () => {
    const copy = enc.encode(prose.repeat(3));
    const lone = codeLengths(copy, 1).bits[0]!;
    // Stream 1 is the same text as stream 0, one step behind it at every byte.
    const twice = codeLengths(new Uint8Array([...copy, ...copy]), 2).bits;
    assert.ok(Math.abs(twice[0]! - lone) < 0.2 * lone, `stream 0 costs ${twice[0]!.toFixed(0)}, alone ${lone}`);
    assert.ok(twice[1]! < 0.3 * twice[0]!, `stream 1 ${twice[1]!.toFixed(0)} bits, stream 0 ${twice[0]!.toFixed(0)}`);
  });

  test('predictions read only bytes already coded: uncoded bytes of the buffer change nothing', () => {
    const data = enc.encode(prose.repeat(4));
    const full = codeLengths(data, 3, data.slice()).probabilities;
    const empty = codeLengths(data, 3, new Uint8Array(data.length)).probabilities;
    const garbage = codeLengths(
      data,
      3,
      data.map((b) => b ^ 0x5a),
    ).probabilities;
    assert.deepEqual(empty, full);
    assert.deepEqual(garbage, full);
  });

  test('the language model’s probabilities steer it: a confident right model makes coding cheaper', () => {
    const data = new Uint8Array(2000);
    let x = 7;
    for (let i = 0; i < data.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      data[i] = x >>> 24;
    }
    const blind = codeLengths(data, 1).bits[0]!;
    const oracle = (offset: number, bitIndex: number) => ((data[offset]! >> (7 - bitIndex)) & 1 ? 1000 : -1000);
    const informed = codeLengths(data, 1, data, oracle).bits[0]!;
    assert.ok(blind / data.length > 7.5, `random bytes cost ${(blind / data.length).toFixed(2)} bits/byte blind`);
    assert.ok(informed < 0.5 * blind, `with a right model ${informed.toFixed(0)} bits, blind ${blind.toFixed(0)}`);
  });

  test('the model’s confidence keys an SSE stage: information a linear mix of its stretch cannot use is used', () => {
    const data = new Uint8Array(20000);
    let x = 11;
    const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
    for (let i = 0; i < data.length; i++) data[i] = next() >>> 24;
    // A 1 comes with a confident model (either sign, at random), a 0 with an undecided one: P(1)
    // does not grow with the stretch, so no weight on it helps; only a map keyed by its band does.
    const signs = Array.from({ length: data.length * 8 }, () => (next() >>> 31 ? 1 : -1));
    const disguised = (offset: number, bitIndex: number) =>
      (data[offset]! >> (7 - bitIndex)) & 1 ? 900 * signs[offset * 8 + bitIndex]! : 0;
    const blind = codeLengths(data, 1).bits[0]!;
    const informed = codeLengths(data, 1, data, disguised).bits[0]!;
    assert.ok(blind / data.length > 7.5, `random bytes cost ${(blind / data.length).toFixed(2)} bits/byte blind`);
    assert.ok(
      informed < 0.9 * blind,
      `with the disguised model ${informed.toFixed(0)} bits, blind ${blind.toFixed(0)}`,
    );
  });
});
