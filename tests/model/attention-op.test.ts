import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { Generator } from '../../src/tensor/random.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { getEngine } from '../../src/engine/index.js';
import { randn } from '../../src/ops/creation.js';
import { attention, type AttentionOptions } from '../../src/ops/attention.js';
import { mul } from '../../src/ops/elementwise.js';
import { sum } from '../../src/ops/reduce.js';
import { alibiSlopes } from '../../src/model/alibi.js';
import { plainInverseFrequencies } from '../../src/model/rotary.js';
import { relativeError, values } from './helpers.js';

const fusedAvailable = typeof getEngine('cpu').attentionForward === 'function';

interface Case {
  batch: number;
  heads: number;
  kvHeads: number;
  queryLen: number;
  keyLen: number;
  headDim: number;
  rotaryDim: number;
  xpos: boolean;
  alibiHeads: number;
  keyScale: boolean;
  causal: boolean;
  queryPositions?: Int32Array;
  keyPositions?: Int32Array;
  querySegments?: Int32Array;
  keySegments?: Int32Array;
}

/** The spec's attention, pair by pair in float64, with xPos as ζ^((i−j)/B) per feature. */
function bruteForce(
  c: Case,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  keyScale: Float64Array | null,
  scale: number,
): Float64Array {
  const { batch: B, heads: H, kvHeads: G, queryLen: N, keyLen: K, headDim: D, rotaryDim: R } = c;
  const invFreq = plainInverseFrequencies(R, 10000).map(Math.fround);
  const slopes = [...alibiSlopes(c.alibiHeads), ...new Array(H - c.alibiHeads).fill(0)];
  const offset = K - N;
  const rotate = (x: Float64Array, pos: number): Float64Array => {
    const out = Float64Array.from(x);
    for (let f = 0; f < R / 2; f++) {
      const a = pos * invFreq[f]!,
        cos = Math.cos(a),
        sin = Math.sin(a);
      out[f] = x[f]! * cos - x[f + R / 2]! * sin;
      out[f + R / 2] = x[f + R / 2]! * cos + x[f]! * sin;
    }
    return out;
  };
  const out = new Float64Array(B * H * N * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = h % G;
      for (let i = 0; i < N; i++) {
        const pq = c.queryPositions ? c.queryPositions[b * N + i]! : i + offset;
        const qi = rotate(q.subarray(((b * H + h) * N + i) * D, ((b * H + h) * N + i + 1) * D), pq);
        const scores: number[] = [];
        for (let j = 0; j < K; j++) {
          const masked =
            (c.causal && j > i + offset) ||
            (c.querySegments && c.querySegments[b * N + i] !== c.keySegments![b * K + j]);
          if (masked) {
            scores.push(-Infinity);
            continue;
          }
          const pk = c.keyPositions ? c.keyPositions[b * K + j]! : j;
          const raw = Float64Array.from(k.subarray(((b * G + g) * K + j) * D, ((b * G + g) * K + j + 1) * D));
          if (keyScale) for (let f = 0; f < D; f++) raw[f] = raw[f]! * keyScale[h * D + f]!;
          const kj = rotate(raw, pk);
          let s = 0;
          for (let f = 0; f < D; f++) {
            let term = qi[f]! * kj[f]!;
            if (c.xpos && f < R) {
              const zeta = (2 * (f % (R / 2)) + 0.4 * R) / (1.4 * R);
              term *= zeta ** ((pq - pk) / 512);
            }
            s += term;
          }
          scores.push(s * scale - slopes[h]! * Math.abs(pq - pk));
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, x) => a + x, 0);
        for (let j = 0; j < K; j++)
          for (let f = 0; f < D; f++) {
            out[((b * H + h) * N + i) * D + f]! += (e[j]! / z) * v[((b * G + g) * K + j) * D + f]!;
          }
      }
    }
  return out;
}

function run(
  c: Case,
  implementation: 'reference' | 'fused',
  seed = 3,
): { out: Float64Array; expected: Float64Array; grads: Float64Array[] } {
  return tidy(() => {
    const g = new Generator(seed);
    const q = randn([c.batch, c.heads, c.queryLen, c.headDim], { generator: g, dtype: 'float64', requiresGrad: true });
    const k = randn([c.batch, c.kvHeads, c.keyLen, c.headDim], { generator: g, dtype: 'float64', requiresGrad: true });
    const v = randn([c.batch, c.kvHeads, c.keyLen, c.headDim], { generator: g, dtype: 'float64', requiresGrad: true });
    const ks = c.keyScale
      ? randn([c.heads, c.headDim], { generator: g, dtype: 'float64', mean: 1, std: 0.3, requiresGrad: true })
      : null;
    const scale = c.headDim ** -0.5;
    const options: AttentionOptions = {
      scale,
      causal: c.causal,
      keyScale: ks,
      rotary: c.rotaryDim
        ? {
            dim: c.rotaryDim,
            invFreq: plainInverseFrequencies(c.rotaryDim, 10000).map(Math.fround),
            xposScaleBase: c.xpos ? 512 : 0,
          }
        : null,
      alibiSlopes: c.alibiHeads ? [...alibiSlopes(c.alibiHeads), ...new Array(c.heads - c.alibiHeads).fill(0)] : null,
      queryPositions: c.queryPositions,
      keyPositions: c.keyPositions,
      querySegments: c.querySegments,
      keySegments: c.keySegments,
      implementation,
    };
    const out = attention(q, k, v, options);
    const weights = randn(out.shape, { generator: g, dtype: 'float64' });
    sum(mul(out, weights)).backward();
    const expected = bruteForce(c, values(q), values(k), values(v), ks ? values(ks) : null, scale);
    const grads = [q, k, v, ...(ks ? [ks] : [])].map((t) => values(t.grad!));
    for (const t of [q, k, v, ks]) t?.dispose();
    return { out: values(out), expected, grads };
  });
}

const base: Case = {
  batch: 2,
  heads: 4,
  kvHeads: 1,
  queryLen: 7,
  keyLen: 7,
  headDim: 16,
  rotaryDim: 8,
  xpos: true,
  alibiHeads: 3,
  keyScale: false,
  causal: true,
};
const cases: [string, Case][] = [
  ['multi-query, partial rotary, xPos, ALiBi on 3 of 4 heads', base],
  ['grouped-query (head h reads KV head h mod 2)', { ...base, kvHeads: 2, xpos: false }],
  ['multi-head', { ...base, kvHeads: 4, alibiHeads: 4 }],
  ['per-head key scale with one KV head', { ...base, keyScale: true }],
  ['queries appended to a cache (query offset 5)', { ...base, queryLen: 3, keyLen: 8 }],
  ['non-causal without xPos', { ...base, causal: false, xpos: false }],
  [
    'segments and positions that reset per document',
    {
      ...base,
      queryLen: 6,
      keyLen: 6,
      querySegments: Int32Array.from([0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 2]),
      keySegments: Int32Array.from([0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 2]),
      queryPositions: Int32Array.from([0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 3, 0]),
      keyPositions: Int32Array.from([0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 3, 0]),
    },
  ],
  [
    "positions far beyond the reference form's float range (xPos stays finite)",
    {
      ...base,
      queryLen: 4,
      keyLen: 4,
      alibiHeads: 0,
      queryPositions: Int32Array.from([200000, 200001, 200002, 200003, 5, 6, 7, 8]),
      keyPositions: Int32Array.from([200000, 200001, 200002, 200003, 5, 6, 7, 8]),
    },
  ],
  [
    'several xPos query blocks, split where positions jump between documents',
    {
      ...base,
      batch: 1,
      heads: 2,
      headDim: 8,
      queryLen: 300,
      keyLen: 300,
      querySegments: Int32Array.from({ length: 300 }, (_, i) => (i < 100 ? 0 : 1)),
      keySegments: Int32Array.from({ length: 300 }, (_, i) => (i < 100 ? 0 : 1)),
      queryPositions: Int32Array.from({ length: 300 }, (_, i) => (i < 100 ? 3000 + i : i - 100)),
      keyPositions: Int32Array.from({ length: 300 }, (_, i) => (i < 100 ? 3000 + i : i - 100)),
      alibiHeads: 1,
    },
  ],
];

for (const [name, c] of cases) {
  test(`attention reference path equals the spec computed pair by pair: ${name}`, () => {
    const { out, expected } = run(c, 'reference');
    assert.ok(out.every(Number.isFinite));
    assert.ok(relativeError(out, expected) < 1e-12, `relative error ${relativeError(out, expected)}`);
  });
  test(
    `attention fused kernel equals the reference path with gradients: ${name}`,
    { skip: !fusedAvailable && 'no fused CPU kernel in this build' },
    () => {
      const reference = run(c, 'reference');
      const fused = run(c, 'fused');
      assert.ok(relativeError(fused.out, reference.out) < 1e-10, `output: ${relativeError(fused.out, reference.out)}`);
      fused.grads.forEach((g, i) =>
        assert.ok(
          relativeError(g, reference.grads[i]!) < 1e-9,
          `gradient ${i}: ${relativeError(g, reference.grads[i]!)}`,
        ),
      );
    },
  );
}

test('reference gradients match finite differences (q, k, v, key scale)', () => {
  const c: Case = { ...base, batch: 1, queryLen: 4, keyLen: 4, keyScale: true };
  const { grads } = run(c, 'reference', 9);
  tidy(() => {
    const g = new Generator(9);
    const inputs = [
      randn([1, 4, 4, 16], { generator: g, dtype: 'float64' }),
      randn([1, 1, 4, 16], { generator: g, dtype: 'float64' }),
      randn([1, 1, 4, 16], { generator: g, dtype: 'float64' }),
      randn([4, 16], { generator: g, dtype: 'float64', mean: 1, std: 0.3 }),
    ];
    const weights = values(randn([1, 4, 4, 16], { generator: g, dtype: 'float64' }));
    const objective = (host: Float64Array[]): number =>
      noGrad(() =>
        tidy(() => {
          const [q, k, v, ks] = host.map((h, i) => Tensor.fromArray(h, inputs[i]!.shape, 'float64'));
          const out = values(
            attention(q!, k!, v!, {
              scale: 0.25,
              keyScale: ks!,
              rotary: { dim: 8, invFreq: plainInverseFrequencies(8, 10000).map(Math.fround), xposScaleBase: 512 },
              alibiSlopes: [...alibiSlopes(3), 0],
              implementation: 'reference',
            }),
          );
          return out.reduce((s, x, i) => s + x * weights[i]!, 0);
        }),
      );
    const host = inputs.map(values);
    for (const [which, index] of [
      [0, 5],
      [1, 17],
      [2, 40],
      [3, 3],
    ] as const) {
      const h = 1e-6;
      const plus = host.map((a) => Float64Array.from(a)),
        minus = host.map((a) => Float64Array.from(a));
      plus[which]![index]! += h;
      minus[which]![index]! -= h;
      const numeric = (objective(plus) - objective(minus)) / (2 * h);
      assert.ok(
        Math.abs(numeric - grads[which]![index]!) < 1e-6 * Math.max(1, Math.abs(numeric)),
        `input ${which}[${index}]: ${numeric} vs ${grads[which]![index]}`,
      );
    }
  });
});

test('rotary interpolation: factor f at positions f·t equals factor 1 at positions t', () => {
  tidy(() => {
    const g = new Generator(4);
    const q = randn([1, 2, 5, 8], { generator: g }),
      k = randn([1, 1, 5, 8], { generator: g }),
      v = randn([1, 1, 5, 8], { generator: g });
    const inv = plainInverseFrequencies(8, 10000);
    const plain = attention(q, k, v, { scale: 0.3, rotary: { dim: 8, invFreq: inv }, implementation: 'reference' });
    const positions = Int32Array.from([0, 4, 8, 12, 16]);
    const interpolated = attention(q, k, v, {
      scale: 0.3,
      rotary: { dim: 8, invFreq: inv.map((f) => f / 4) },
      queryPositions: positions,
      keyPositions: positions,
      implementation: 'reference',
    });
    assert.ok(relativeError(values(interpolated), values(plain)) < 1e-6);
  });
});

test('attention rejects inconsistent inputs with clear messages', () => {
  tidy(() => {
    const q = randn([1, 4, 3, 8]),
      k = randn([1, 3, 3, 8]),
      v = randn([1, 3, 3, 8]);
    assert.throws(() => attention(q, k, v, { scale: 1 }), /4 query heads are not a multiple of 3 key\/value heads/);
    const k2 = randn([1, 2, 3, 8]);
    assert.throws(
      () => attention(q, k2, k2, { scale: 1, keyScale: randn([4, 8]) }),
      /per-head key scale needs one KV head or one per query head/,
    );
    assert.throws(
      () => attention(q, k2, k2, { scale: 1, rotary: { dim: 10, invFreq: new Float64Array(5) } }),
      /rotary dim 10 must be even and at most the head dim 8/,
    );
    assert.throws(
      () =>
        attention(q, k2, k2, {
          scale: 1,
          causal: false,
          rotary: { dim: 8, invFreq: new Float64Array(4), xposScaleBase: 512 },
        }),
      /xPos needs causal attention/,
    );
    assert.throws(() => attention(q, k2, k2, { scale: 1, alibiSlopes: [1, 2] }), /2 ALiBi slopes for 4 heads/);
    assert.throws(
      () =>
        attention(q, k2, k2, {
          scale: 1,
          querySegments: Int32Array.from([0, 0, 1]),
          keySegments: Int32Array.from([1, 1, 1]),
          implementation: 'reference',
        }),
      /query 0 of batch row 0 can attend to no key/,
    );
  });
});
