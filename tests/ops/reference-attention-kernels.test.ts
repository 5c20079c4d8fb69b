// The reference attention form's kernels on the CPU engine against element-by-element float64 host
// versions (tests/helpers/reference-attention-kernels.ts): the masked softmax (ALiBi, causal offset,
// document masks, explicit positions read through row windows, rows that see nothing, in place) and
// the rotary/xPos transform (partial rotation, explicit positions, anchors, clamps, multiplier), their
// gradients by finite differences; and the reference attention in float32 at the edges of the one-anchor
// xPos range against float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { Generator } from '../../src/tensor/random.js';
import type { DType } from '../../src/tensor/dtype.js';
import { maskedSoftmax, type ScoreMask } from '../../src/ops/masked-softmax.js';
import { rotary, type RotarySpec } from '../../src/ops/rotary.js';
import type { TokenRows } from '../../src/ops/token-rows.js';
import { attention } from '../../src/ops/attention.js';
import { randn } from '../../src/ops/creation.js';
import { mul } from '../../src/ops/elementwise.js';
import { sum } from '../../src/ops/reduce.js';
import { getEngine } from '../../src/engine/index.js';
import { alibiSlopes } from '../../src/model/alibi.js';
import { plainInverseFrequencies } from '../../src/model/rotary.js';
import { gradcheck } from '../helpers/gradcheck.js';
import {
  maskedSoftmaxReference,
  rotaryReference,
  type HostMask,
  type HostRows,
  type HostRotary,
} from '../helpers/reference-attention-kernels.js';

const TOLERANCE: Record<string, number> = { float64: 1e-13, float32: 2e-6, bfloat16: 1e-2 };

function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return Math.sqrt(num / (den || 1));
}

function normals(count: number, gen: Generator, scale = 1): Float64Array {
  return Float64Array.from({ length: count }, () => scale * gen.normal());
}

/** Device rows for the ops and the same rows on the host for the reference. */
function rows(values: Int32Array, offset: number, stride: number): { device: TokenRows; host: HostRows } {
  return {
    device: { data: Tensor.fromArray(values, [values.length], 'int32'), offset, stride },
    host: { values, offset, stride },
  };
}

interface SoftmaxCase {
  name: string;
  batch: number;
  heads: number;
  queryLen: number;
  keyLen: number;
  causal: boolean;
  queryOffset: number;
  alibi: boolean;
  /** Explicit positions / segments, stored with a window (offset, stride) as a query block reads them. */
  positions?: boolean;
  segments?: boolean;
}

const softmaxCases: SoftmaxCase[] = [
  {
    name: 'causal, queries appended after 2 keys, ALiBi on 2 of 3 heads',
    batch: 2,
    heads: 3,
    queryLen: 5,
    keyLen: 7,
    causal: true,
    queryOffset: 2,
    alibi: true,
  },
  {
    name: 'causal square, no bias (pure masked softmax), odd key count',
    batch: 1,
    heads: 2,
    queryLen: 9,
    keyLen: 9,
    causal: true,
    queryOffset: 0,
    alibi: false,
  },
  {
    name: 'explicit positions and segments through row windows, ALiBi',
    batch: 2,
    heads: 2,
    queryLen: 6,
    keyLen: 8,
    causal: true,
    queryOffset: 2,
    alibi: true,
    positions: true,
    segments: true,
  },
  {
    name: 'non-causal with segments: a row sees no key',
    batch: 2,
    heads: 2,
    queryLen: 4,
    keyLen: 16,
    causal: false,
    queryOffset: 0,
    alibi: true,
    segments: true,
  },
  {
    name: 'long rows (key count a multiple of 8, several vectors per thread on CUDA)',
    batch: 1,
    heads: 2,
    queryLen: 3,
    keyLen: 520,
    causal: true,
    queryOffset: 517,
    alibi: true,
    positions: true,
  },
];

function softmaxInputs(c: SoftmaxCase, seed: number): { mask: ScoreMask; host: HostMask; scores: Float64Array } {
  const gen = new Generator(seed);
  const slopes = c.alibi ? Float64Array.from([...alibiSlopes(c.heads - 1), 0]) : null;
  // Windows: values for `batch` rows of stride length + 3, starting 2 in (as a query block at index 2 would).
  const window = (length: number, make: (b: number, i: number) => number) => {
    const stride = length + 3;
    const values = new Int32Array(2 + c.batch * stride).fill(-7);
    for (let b = 0; b < c.batch; b++) for (let i = 0; i < length; i++) values[2 + b * stride + i] = make(b, i);
    return rows(values, 2, stride);
  };
  const qp = c.positions ? window(c.queryLen, (b, i) => 100 * b + 3 * i + 5) : null;
  const kp = c.positions ? window(c.keyLen, (b, j) => 100 * b + 2 * j) : null;
  // Row 1, query 0 gets id 9, which no key has (non-causal case); otherwise two documents per row.
  const qs = c.segments
    ? window(c.queryLen, (b, i) => (b === 1 && i === 0 && !c.causal ? 9 : i < c.queryLen / 2 ? 0 : 1))
    : null;
  const ks = c.segments ? window(c.keyLen, (_b, j) => (j < c.keyLen / 3 ? 0 : 1)) : null;
  const mask: ScoreMask = {
    causal: c.causal,
    queryOffset: c.queryOffset,
    alibiSlopes: slopes,
    queryPositions: qp?.device ?? null,
    keyPositions: kp?.device ?? null,
    querySegments: qs?.device ?? null,
    keySegments: ks?.device ?? null,
  };
  const host: HostMask = {
    batch: c.batch,
    heads: c.heads,
    queryLen: c.queryLen,
    keyLen: c.keyLen,
    causal: c.causal,
    queryOffset: c.queryOffset,
    slopes,
    queryPositions: qp?.host ?? null,
    keyPositions: kp?.host ?? null,
    querySegments: qs?.host ?? null,
    keySegments: ks?.host ?? null,
  };
  return { mask, host, scores: normals(c.batch * c.heads * c.queryLen * c.keyLen, gen, 2) };
}

for (const c of softmaxCases) {
  for (const dtype of ['float64', 'float32', 'bfloat16'] as DType[]) {
    test(`maskedSoftmax (${dtype}) equals softmax(scores + ALiBi) with masked keys exactly 0: ${c.name}`, () =>
      tidy(() => {
        const { mask, host, scores } = softmaxInputs(c, 11);
        const s = Tensor.fromArray(scores, [c.batch, c.heads, c.queryLen, c.keyLen], dtype);
        const stored = Float64Array.from(s.toArray());
        const want = maskedSoftmaxReference(stored, host);
        const got = Float64Array.from(maskedSoftmax(s, mask).toArray());
        const err = relativeError(got, want);
        assert.ok(err < TOLERANCE[dtype]!, `relative error ${err.toExponential(2)}`);
        want.forEach((w, i) => {
          if (w === 0) assert.equal(got[i], 0, `element ${i} is masked but got ${got[i]}`);
        });
        if (!c.causal && c.segments) {
          const row = (1 * c.heads + 0) * c.queryLen * c.keyLen; // batch row 1, head 0, query 0
          assert.ok(
            got.subarray(row, row + c.keyLen).every((x) => x === 0),
            'a row that sees no key is all 0',
          );
        }
      }));
  }
}

test('maskedSoftmax in place overwrites the scores and shares their storage, with the same values', () =>
  tidy(() => {
    const c = softmaxCases[2]!;
    const { mask, scores } = softmaxInputs(c, 5);
    const a = Tensor.fromArray(scores, [c.batch, c.heads, c.queryLen, c.keyLen], 'float64');
    const b = Tensor.fromArray(scores, [c.batch, c.heads, c.queryLen, c.keyLen], 'float64');
    const copy = maskedSoftmax(a, mask);
    const inPlace = maskedSoftmax(b, mask, { inPlace: true });
    assert.equal(inPlace.storage, b.storage);
    assert.notEqual(copy.storage, a.storage);
    assert.deepEqual(Array.from(inPlace.toArray()), Array.from(copy.toArray()));
    assert.deepEqual(Array.from(b.toArray()), Array.from(copy.toArray()));
  }));

test('maskedSoftmax gradient matches finite differences (ALiBi, causal offset, segments, positions)', () => {
  const c = softmaxCases[2]!;
  const { mask } = softmaxInputs(c, 3);
  gradcheck('maskedSoftmax', (s) => maskedSoftmax(s, mask), [{ shape: [c.batch, c.heads, c.queryLen, c.keyLen] }], {
    seed: 4,
    tolerance: 1e-7,
  });
  for (const r of [mask.queryPositions, mask.keyPositions, mask.querySegments, mask.keySegments]) r?.data.dispose();
});

interface RotaryCase {
  name: string;
  batch: number;
  heads: number;
  length: number;
  headDim: number;
  rotaryDim: number;
  positions?: 'window' | 'far';
  positionOffset?: number;
  xpos?: { anchor: number; sign: 1 | -1; minDistance: number };
  multiplier: number;
}

const rotaryCases: RotaryCase[] = [
  {
    name: 'full rotation, default positions from 3, query-side xPos around anchor 6, scale 0.3',
    batch: 2,
    heads: 3,
    length: 5,
    headDim: 8,
    rotaryDim: 8,
    positionOffset: 3,
    xpos: { anchor: 6, sign: 1, minDistance: -Infinity },
    multiplier: 0.3,
  },
  {
    name: 'partial rotation (4 of 10 features), positions through a window, key-side xPos clamped at −3',
    batch: 2,
    heads: 2,
    length: 6,
    headDim: 10,
    rotaryDim: 4,
    positions: 'window',
    xpos: { anchor: 7, sign: -1, minDistance: -3 },
    multiplier: 1,
  },
  {
    name: 'positions near 10^5 (angles in double), no xPos',
    batch: 1,
    heads: 2,
    length: 4,
    headDim: 16,
    rotaryDim: 16,
    positions: 'far',
    multiplier: 1,
  },
  {
    name: 'no rotated features: only the multiplier',
    batch: 1,
    heads: 2,
    length: 3,
    headDim: 4,
    rotaryDim: 0,
    multiplier: 2.5,
  },
];

function rotaryInputs(c: RotaryCase, transpose: boolean): { spec: RotarySpec; host: HostRotary } {
  let pos: { device: TokenRows; host: HostRows } | null = null;
  if (c.positions) {
    const stride = c.length + 2;
    const values = new Int32Array(1 + c.batch * stride);
    for (let b = 0; b < c.batch; b++)
      for (let j = 0; j < c.length; j++)
        values[1 + b * stride + j] = c.positions === 'far' ? 99_000 + 977 * j : 4 * b + j * 2;
    pos = rows(values, 1, stride);
  }
  const invFreq = plainInverseFrequencies(c.rotaryDim, 10000);
  const xpos = c.xpos ? { scaleBase: 8, ...c.xpos } : null;
  return {
    spec: {
      rotaryDim: c.rotaryDim,
      invFreq,
      positions: pos?.device ?? null,
      positionOffset: c.positionOffset ?? 0,
      xpos,
      multiplier: c.multiplier,
    },
    host: {
      batch: c.batch,
      heads: c.heads,
      length: c.length,
      headDim: c.headDim,
      rotaryDim: c.rotaryDim,
      invFreq,
      positions: pos?.host ?? null,
      positionOffset: c.positionOffset ?? 0,
      xpos,
      multiplier: c.multiplier,
      transpose,
    },
  };
}

for (const c of rotaryCases) {
  for (const dtype of ['float64', 'float32', 'bfloat16'] as DType[]) {
    test(`rotary (${dtype}) equals multiplier · xPos · R(p) x: ${c.name}`, () =>
      tidy(() => {
        const { spec, host } = rotaryInputs(c, false);
        const x = Tensor.fromArray(
          normals(c.batch * c.heads * c.length * c.headDim, new Generator(2)),
          [c.batch, c.heads, c.length, c.headDim],
          dtype,
        );
        const want = rotaryReference(Float64Array.from(x.toArray()), host);
        const err = relativeError(Float64Array.from(rotary(x, spec).toArray()), want);
        assert.ok(err < TOLERANCE[dtype]!, `relative error ${err.toExponential(2)}`);
      }));
  }
  test(`rotary gradient (the transposed rotation) matches finite differences: ${c.name}`, () => {
    const { spec } = rotaryInputs(c, true);
    gradcheck('rotary', (x) => rotary(x, spec), [{ shape: [c.batch, c.heads, c.length, c.headDim] }], {
      seed: 6,
      tolerance: 1e-7,
    });
    spec.positions?.data.dispose();
  });
}

test('rotary and the kernel check their arguments', () =>
  tidy(() => {
    const x = Tensor.fromArray(new Float64Array(2 * 4), [1, 1, 2, 4], 'float64');
    const base: RotarySpec = {
      rotaryDim: 4,
      invFreq: Float64Array.from([1, 0.1]),
      positions: null,
      positionOffset: 0,
      xpos: null,
      multiplier: 1,
    };
    assert.throws(() => rotary(x, { ...base, rotaryDim: 3 }), /rotaryDim 3 must be even/);
    assert.throws(
      () => rotary(x, { ...base, invFreq: Float64Array.from([1]) }),
      /1 inverse frequencies for 4 rotated features/,
    );
    const short = { data: Tensor.fromArray(Int32Array.from([0, 1, 2]), [3], 'int32'), offset: 2, stride: 2 };
    assert.throws(() => rotary(x, { ...base, positions: short }), /positions rows .* do not fit its 3 values/);
    const s = Tensor.fromArray(new Float64Array(4), [1, 1, 2, 2], 'float64');
    assert.throws(
      () =>
        maskedSoftmax(s, {
          causal: true,
          queryOffset: 0,
          alibiSlopes: Float64Array.from([1, 2]),
          queryPositions: null,
          keyPositions: null,
          querySegments: null,
          keySegments: null,
        }),
      /2 ALiBi slopes for 1 heads/,
    );
  }));

// xPos with one anchor: factors up to e^±40 in float32 at a position span of 32,690 (just under the
// 32,696 limit for B = 512); with per-row anchors and query blocks beyond it. Float32 against float64.
const spans: [string, number[], number[]][] = [
  [
    'one anchor across a 32,690-position span',
    [0, 1, 2, 3, 32_687, 32_688, 32_689, 32_690],
    [0, 1, 2, 3, 32_687, 32_688, 32_689, 32_690],
  ],
  [
    'per-row anchors (rows 200,000 positions apart)',
    [0, 1, 2, 3, 4, 5, 6, 7],
    [200_000, 200_001, 200_002, 200_003, 200_004, 200_005, 200_006, 200_007],
  ],
  [
    'query blocks (a row spanning 40,000 positions)',
    [0, 1, 2, 3, 40_000, 40_001, 40_002, 40_003],
    [10, 11, 12, 13, 14, 15, 16, 17],
  ],
];
for (const [name, row0, row1] of spans) {
  test(`reference attention in float32 equals float64 under xPos: ${name}`, () =>
    tidy(() => {
      const positions = Int32Array.from([...row0, ...row1]);
      const gen = new Generator(8);
      const q = randn([2, 4, 8, 16], { generator: gen, dtype: 'float64' });
      const k = randn([2, 1, 8, 16], { generator: gen, dtype: 'float64' });
      const v = randn([2, 1, 8, 16], { generator: gen, dtype: 'float64' });
      const run = (dtype: DType): Float64Array =>
        Float64Array.from(
          attention(q.to(dtype), k.to(dtype), v.to(dtype), {
            scale: 0.25,
            rotary: { dim: 8, invFreq: plainInverseFrequencies(8, 10000), xposScaleBase: 512 },
            alibiSlopes: [...alibiSlopes(2), 0, 0],
            queryPositions: positions,
            keyPositions: positions,
            implementation: 'reference',
          }).toArray(),
        );
      const want = run('float64'),
        got = run('float32');
      assert.ok(got.every(Number.isFinite), 'finite');
      const err = relativeError(got, want);
      assert.ok(err < 1e-5, `relative error ${err.toExponential(2)}`);
    }));
}

test(
  'reference attention keeps one n × n buffer per call for the backward pass: the probabilities, written over ' +
    'the scores',
  () =>
    tidy(() => {
      const [H, T, d] = [4, 256, 16];
      const gen = new Generator(4);
      const q = randn([1, H, T, d], { generator: gen, dtype: 'float64', requiresGrad: true });
      const k = randn([1, 1, T, d], { generator: gen, dtype: 'float64', requiresGrad: true });
      const v = randn([1, 1, T, d], { generator: gen, dtype: 'float64', requiresGrad: true });
      const ks = randn([H, d], { generator: gen, dtype: 'float64', requiresGrad: true });
      const engine = getEngine('cpu');
      const before = engine.memoryStats().allocated;
      const out = attention(q, k, v, {
        scale: 0.25,
        keyScale: ks,
        rotary: { dim: d, invFreq: plainInverseFrequencies(d, 10000), xposScaleBase: 512 },
        alibiSlopes: alibiSlopes(H),
        implementation: 'reference',
      });
      const held = engine.memoryStats().allocated - before;
      const probabilities = H * T * T * 8,
        perHead = H * T * d * 8;
      // Probabilities, plus q/k-sized tensors: scaled keys, rotated queries and keys, the output.
      assert.ok(
        held <= probabilities + 4 * perHead + 4096,
        `the forward pass holds ${held} bytes; expected the ${probabilities}-byte probabilities and 4 ` +
          `tensors of ${perHead} bytes`,
      );
      sum(mul(out, 1)).backward();
      assert.ok(q.grad && k.grad && v.grad && ks.grad);
    }),
);
