// The range coder and the quantised byte distributions, without a model: many inputs, exact round trips.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RangeDecoder, RangeEncoder, MAX_TOTAL } from '../../src/compress/range-coder.js';
import { byteAt, quantizedCumulative } from '../../src/compress/byte-distribution.js';
import { xorshift32 } from '../helpers/xorshift.js';

/**
 * A stand-in for the model: a distribution per context (the previous byte and 2 bits of the one
 * before) drawn from a fixed pseudo-random table, sharp enough that some bytes get nearly all the
 * mass (long runs of tiny intervals and of near-certain symbols, which drive carries through 0xff
 * runs). Memoised per context so the 200 files code quickly.
 */
function contextModel(sharpness: number): (prev1: number, prev2: number) => Uint32Array {
  const memo = new Map<number, Uint32Array>();
  return (prev1, prev2) => {
    const key = prev1 * 4 + (prev2 & 3);
    let cum = memo.get(key);
    if (!cum) {
      const r = xorshift32(key + 1);
      const logits = new Float32Array(257);
      for (let b = 0; b < 256; b++) logits[b] = sharpness * (r() - 0.5) * (b === prev1 ? 4 : 1);
      logits[256] = 0; // a special token: never coded
      cum = quantizedCumulative(logits, 0, new Uint32Array(257));
      memo.set(key, cum);
    }
    return cum;
  };
}

function code(data: Uint8Array, sharpness: number): { bytes: Uint8Array; idealBits: number } {
  const encoder = new RangeEncoder();
  const model = contextModel(sharpness);
  let idealBits = 0;
  for (let i = 0; i < data.length; i++) {
    const cum = model(data[i - 1] ?? 0, data[i - 2] ?? 0);
    const b = data[i]!;
    const size = cum[b + 1]! - cum[b]!;
    idealBits -= Math.log2(size / cum[256]!);
    encoder.encode(cum[b]!, size, cum[256]!);
  }
  return { bytes: encoder.finish(), idealBits };
}

function decode(bytes: Uint8Array, length: number, sharpness: number): Uint8Array {
  const decoder = new RangeDecoder(bytes);
  const model = contextModel(sharpness);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const cum = model(out[i - 1] ?? 0, out[i - 2] ?? 0);
    const b = byteAt(cum, decoder.target(cum[256]!));
    decoder.consume(cum[b]!, cum[b + 1]! - cum[b]!, cum[256]!);
    out[i] = b;
  }
  return out;
}

/** 200 inputs: empty, single bytes, text, code-like text, random bytes, runs, and one of 1 MiB. */
function corpus(): { name: string; data: Uint8Array }[] {
  const files: { name: string; data: Uint8Array }[] = [];
  const r = xorshift32(7);
  const enc = new TextEncoder();
  files.push({ name: 'empty', data: new Uint8Array(0) });
  for (const b of [0, 1, 127, 128, 255]) files.push({ name: `byte ${b}`, data: Uint8Array.of(b) });
  const words = ['the', 'whale', 'sea', 'Ishmael', 'ship', 'of', 'and', 'a', 'captain', 'white'];
  while (files.length < 60) {
    const n = Math.floor(r() * 3000);
    const text = Array.from({ length: n / 5 }, () => words[Math.floor(r() * words.length)]).join(' ');
    files.push({ name: `text ${files.length}`, data: enc.encode(text) });
  }
  while (files.length < 110) {
    const lines = Array.from(
      { length: Math.floor(r() * 80) },
      (_, i) => `export function f${i}(x: number): number {\n  return x * ${i} + ${Math.floor(r() * 100)};\n}\n`,
    );
    files.push({ name: `code ${files.length}`, data: enc.encode(lines.join('')) });
  }
  while (files.length < 170) {
    const data = Uint8Array.from({ length: Math.floor(r() * 4000) }, () => Math.floor(r() * 256));
    files.push({ name: `random ${files.length}`, data });
  }
  while (files.length < 199) {
    const byte = Math.floor(r() * 256);
    files.push({ name: `run ${files.length}`, data: new Uint8Array(1 + Math.floor(r() * 20000)).fill(byte) });
  }
  files.push({ name: '1 MB', data: Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 31 + (i >> 9)) & 0xff) });
  return files;
}

describe('range coder with quantised distributions', () => {
  const files = corpus();

  test('200 inputs round-trip exactly, within 0.1% + 8 bytes of the ideal code length', () => {
    assert.equal(files.length, 200);
    for (const { name, data } of files) {
      for (const sharpness of [4, 60]) {
        const { bytes, idealBits } = code(data, sharpness);
        assert.deepEqual(decode(bytes, data.length, sharpness), data, `${name}, sharpness ${sharpness}`);
        assert.ok(
          bytes.length * 8 <= idealBits * 1.001 + 64,
          `${name}: ${bytes.length * 8} bits coded, ideal ${idealBits.toFixed(0)}`,
        );
      }
    }
  });

  test('decoding with a different distribution does not reproduce the input', () => {
    const data = files.find((f) => f.name.startsWith('text') && f.data.length > 500)!.data;
    const { bytes } = code(data, 60);
    assert.notDeepEqual(decode(bytes, data.length, 4), data);
  });

  test('extreme intervals: total 2^16 with symbols of size 1 and size 2^16 − 1', () => {
    const r = xorshift32(3);
    const symbols = Array.from({ length: 50_000 }, () => (r() < 0.001 ? 1 : 0));
    const encoder = new RangeEncoder();
    for (const s of symbols) encoder.encode(s === 0 ? 0 : MAX_TOTAL - 1, s === 0 ? MAX_TOTAL - 1 : 1, MAX_TOTAL);
    const decoder = new RangeDecoder(encoder.finish());
    for (const [i, s] of symbols.entries()) {
      const target = decoder.target(MAX_TOTAL);
      const got = target < MAX_TOTAL - 1 ? 0 : 1;
      assert.equal(got, s, `symbol ${i}`);
      decoder.consume(got === 0 ? 0 : MAX_TOTAL - 1, got === 0 ? MAX_TOTAL - 1 : 1, MAX_TOTAL);
    }
  });

  test('bad intervals are rejected', () => {
    const encoder = new RangeEncoder();
    assert.throws(() => encoder.encode(0, 0, 10), /bad interval/);
    assert.throws(() => encoder.encode(5, 6, 10), /bad interval/);
    assert.throws(() => encoder.encode(0, 1, MAX_TOTAL + 1), /bad interval/);
  });
});

describe('quantised byte distributions', () => {
  test('every byte gets at least 1, the total stays within 2^16, and likelier bytes get more', () => {
    const r = xorshift32(11);
    const logits = Float32Array.from({ length: 300 }, () => (r() - 0.5) * 80);
    const cum = quantizedCumulative(logits, 0, new Uint32Array(257));
    assert.ok(cum[256]! <= MAX_TOTAL && cum[256]! > MAX_TOTAL - 256, `total ${cum[256]}`);
    for (let b = 0; b < 256; b++) {
      assert.ok(cum[b + 1]! - cum[b]! >= 1);
      for (const c of [0, 100, 255])
        if (logits[b]! > logits[c]!) assert.ok(cum[b + 1]! - cum[b]! >= cum[c + 1]! - cum[c]!);
    }
  });

  test('the offset selects a row, and only the 256 byte logits count', () => {
    const logits = new Float32Array(2 * 300);
    logits[300 + 65] = 10;
    logits[300 + 256] = 1000; // a special token's logit is ignored
    const cum = quantizedCumulative(logits, 300, new Uint32Array(257));
    assert.ok(cum[66]! - cum[65]! > 60_000);
    assert.equal(byteAt(cum, cum[65]!), 65);
    assert.equal(byteAt(cum, cum[66]! - 1), 65);
    assert.equal(byteAt(cum, cum[66]!), 66);
  });

  test('non-finite logits are an error, not a silent bad distribution', () => {
    const logits = new Float32Array(257);
    logits[3] = Number.NaN;
    assert.throws(() => quantizedCumulative(logits, 0, new Uint32Array(257)), /non-finite/);
    logits[3] = Number.POSITIVE_INFINITY;
    assert.throws(() => quantizedCumulative(logits, 0, new Uint32Array(257)), /non-finite/);
  });
});
