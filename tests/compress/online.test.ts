// Online mode with context mixing, in process: exact round trips of awkward inputs (each side
// builds its own fresh model, as the CLI does), a text coded well below its order-0 entropy, and
// the header's context-mixing field.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import '../../src/engine/index.js';
import {
  buildOnlineModel,
  compressBytes,
  decompressBytes,
  engineIdentity,
  onlineModelSpec,
  readHeader,
  type CompressOptions,
} from '../../src/compress/index.js';
import { writeContainer, type CompressedHeader } from '../../src/compress/container.js';
import { CONTEXT_MIXER_VERSION } from '../../src/compress/context-mixer.js';

const spec = onlineModelSpec({ preset: 'tiny', seed: 3, learningRate: 0.01 });
const coding = { context: 32, overlap: 8, contextMixing: true } as const;

function compressOnline(data: Uint8Array, o: Partial<CompressOptions> = {}): Uint8Array {
  const model = buildOnlineModel(spec);
  try {
    return compressBytes(data, model, { engine: engineIdentity(), ...coding, ...o }).file;
  } finally {
    model.dispose();
  }
}

/** Compresses with one fresh model and decompresses with another; returns the file. */
function roundTrip(data: Uint8Array, o: Partial<CompressOptions> = {}): Uint8Array {
  const engine = engineIdentity();
  const file = compressOnline(data, o);
  const { header, payload } = readHeader(file, 'online.andz');
  const decoding = buildOnlineModel(header.model as typeof spec);
  try {
    assert.deepEqual(decompressBytes(header, payload, decoding, { engine, name: 'online.andz' }), data);
  } finally {
    decoding.dispose();
  }
  return file;
}

function randomBytes(n: number, seed: number): Uint8Array {
  let x = seed;
  return Uint8Array.from({ length: n }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x & 0xff;
  });
}

/** Bits of the best static per-byte code for `data` (its order-0 empirical entropy). */
function order0Bits(data: Uint8Array): number {
  const counts = new Array<number>(256).fill(0);
  for (const b of data) counts[b]!++;
  return counts.reduce((bits, c) => (c ? bits - c * Math.log2(c / data.length) : bits), 0);
}

function mobyDickStart(bytes: number): Uint8Array {
  const corpus = fileURLToPath(new URL('../../../corpus/prose/moby-dick.train.jsonl', import.meta.url));
  let text = '';
  for (const line of readFileSync(corpus, 'utf8').split('\n')) {
    if (text.length >= bytes) break;
    if (line.trim()) text += (JSON.parse(line) as { text: string }).text;
  }
  const data = new TextEncoder().encode(text).subarray(0, bytes);
  assert.equal(data.length, bytes, `the corpus has ${bytes} bytes of text`);
  return data;
}

describe('andromeda compress --online with context mixing', () => {
  test('empty, 1-byte, random and binary inputs round-trip exactly', () => {
    const floats = new Uint8Array(Float32Array.from({ length: 200 }, (_, i) => Math.sin(i / 7) * 1000).buffer);
    for (const data of [new Uint8Array(0), Uint8Array.of(0), Uint8Array.of(255), randomBytes(600, 11), floats]) {
      const file = roundTrip(data);
      assert.equal(readHeader(file, 'x').header.contextMixing, true);
    }
  });

  test('a file of several streams whose text repeats across them round-trips exactly', () => {
    const data = new Uint8Array([...mobyDickStart(2500), ...mobyDickStart(2500), ...randomBytes(300, 4)]);
    const file = roundTrip(data, { maxStreams: 2 });
    assert.equal(readHeader(file, 'x').header.streams, 2);
    // The second copy is coded from the first (stream 1 starts inside it): far below 8 bits a byte.
    assert.ok(file.length < 0.5 * data.length, `${file.length} bytes for ${data.length}`);
  });

  test('4,000 bytes of Moby-Dick cost well below their order-0 entropy; the model alone below 8 bits', () => {
    const data = mobyDickStart(4000);
    const mixed = readHeader(roundTrip(data), 'x').payload.length * 8;
    const bound = order0Bits(data);
    assert.ok(bound / data.length > 4, `order-0 entropy ${(bound / data.length).toFixed(3)} bits per byte`);
    assert.ok(mixed < 0.85 * bound, `coded ${(mixed / data.length).toFixed(3)} bits per byte`);
    const alone = readHeader(compressOnline(data, { contextMixing: false }), 'x');
    assert.equal(alone.header.contextMixing, undefined);
    const aloneBits = alone.payload.length * 8;
    assert.ok(aloneBits < 0.8 * 8 * data.length, `model alone ${(aloneBits / data.length).toFixed(3)} bits per byte`);
    assert.ok(mixed < aloneBits, `mixed ${mixed} bits, model alone ${aloneBits}`);
  });

  test('a file from a context-mixer version this build does not know is refused by name', () => {
    const file = compressOnline(mobyDickStart(300));
    const { header, payload } = readHeader(file, 'x');
    assert.equal(header.mixerVersion, CONTEXT_MIXER_VERSION);
    const { mixerVersion: _, ...versionOne } = header;
    // Version 1 (no version field) decodes with its own predictions (./compat.test.ts decodes such a file).
    assert.doesNotThrow(() => readHeader(writeContainer(versionOne, payload), 'v1.andz'));
    const newer = CONTEXT_MIXER_VERSION + 1;
    assert.throws(
      () => readHeader(writeContainer({ ...header, mixerVersion: newer }, payload), 'new.andz'),
      new RegExp(`new\\.andz was coded with context-mixer version ${newer}; this build decodes versions 1, 2`),
    );
    // Without context mixing the mixer's version does not matter.
    const { contextMixing: __, ...modelOnly } = versionOne;
    assert.doesNotThrow(() => readHeader(writeContainer(modelOnly, payload), 'model-only.andz'));
  });

  test('a header whose contextMixing field is not a boolean is rejected', () => {
    const header = {
      length: 1,
      crc32: 0,
      streams: 1,
      context: 32,
      overlap: 8,
      engine: engineIdentity(),
      model: spec,
      contextMixing: 'yes',
    } as unknown as CompressedHeader;
    assert.throws(
      () => readHeader(writeContainer(header, new Uint8Array(8)), 'odd.andz'),
      /odd\.andz: the header's fields are missing or out of range/,
    );
  });
});
