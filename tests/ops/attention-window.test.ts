// Sliding-window attention (Mistral's sliding_window): query i sees keys j with i − j < W. Checked pair by
// pair in float64 against a brute force over sequences long enough for several 256-query blocks, whose key
// ranges then start inside the sequence; gradients against the same attention composed from plain ops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/engine/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { Generator } from '../../src/tensor/random.js';
import { randn } from '../../src/ops/creation.js';
import { attention } from '../../src/ops/attention.js';
import { add, mul } from '../../src/ops/elementwise.js';
import { matmul } from '../../src/ops/matmul.js';
import { softmax } from '../../src/ops/nn.js';
import { transpose } from '../../src/ops/layout.js';
import { sum } from '../../src/ops/reduce.js';
import { plainInverseFrequencies } from '../../src/model/rotary.js';
import { relativeError, values } from '../model/helpers.js';

interface Case {
  heads: number;
  kvHeads: number;
  queryLen: number;
  keyLen: number;
  headDim: number;
  window: number;
  slope: number;
  positions?: Int32Array;
  segments?: Int32Array;
}

/** Float64 attention of one batch row, pair by pair: rotary on the whole head, ALiBi, causal, window, segments. */
function bruteForce(c: Case, q: Float64Array, k: Float64Array, v: Float64Array): Float64Array {
  const { heads: H, kvHeads: G, queryLen: N, keyLen: K, headDim: D } = c;
  const invFreq = plainInverseFrequencies(D, 10000).map(Math.fround);
  const offset = K - N;
  const position = (index: number): number => (c.positions ? c.positions[index]! : index);
  const rotate = (x: Float64Array, pos: number): Float64Array => {
    const out = Float64Array.from(x);
    for (let f = 0; f < D / 2; f++) {
      const a = pos * invFreq[f]!;
      out[f] = x[f]! * Math.cos(a) - x[f + D / 2]! * Math.sin(a);
      out[f + D / 2] = x[f + D / 2]! * Math.cos(a) + x[f]! * Math.sin(a);
    }
    return out;
  };
  const out = new Float64Array(H * N * D);
  for (let h = 0; h < H; h++) {
    const g = h % G;
    for (let i = 0; i < N; i++) {
      const qi = rotate(q.subarray((h * N + i) * D, (h * N + i + 1) * D), position(i + offset));
      const scores = new Float64Array(K).fill(-Infinity);
      for (let j = 0; j <= i + offset; j++) {
        if (i + offset - j >= c.window) continue;
        if (c.segments && c.segments[i + offset] !== c.segments[j]) continue;
        const kj = rotate(k.subarray((g * K + j) * D, (g * K + j + 1) * D), position(j));
        let s = 0;
        for (let f = 0; f < D; f++) s += qi[f]! * kj[f]!;
        scores[j] = s / Math.sqrt(D) - c.slope * Math.abs(position(i + offset) - position(j));
      }
      const m = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - m));
      const z = e.reduce((a, x) => a + x, 0);
      for (let j = 0; j < K; j++)
        for (let f = 0; f < D; f++) out[(h * N + i) * D + f]! += (e[j]! / z) * v[(g * K + j) * D + f]!;
    }
  }
  return out;
}

function windowed(c: Case): { out: Float64Array; expected: Float64Array } {
  return tidy(() => {
    const g = new Generator(11);
    const q = randn([1, c.heads, c.queryLen, c.headDim], { generator: g, dtype: 'float64' });
    const k = randn([1, c.kvHeads, c.keyLen, c.headDim], { generator: g, dtype: 'float64' });
    const v = randn([1, c.kvHeads, c.keyLen, c.headDim], { generator: g, dtype: 'float64' });
    const offset = c.keyLen - c.queryLen;
    const out = attention(q, k, v, {
      scale: c.headDim ** -0.5,
      window: c.window,
      rotary: { dim: c.headDim, invFreq: plainInverseFrequencies(c.headDim, 10000).map(Math.fround) },
      alibiSlopes: c.slope ? new Array(c.heads).fill(c.slope) : null,
      queryPositions: c.positions?.subarray(offset),
      keyPositions: c.positions,
      querySegments: c.segments?.subarray(offset),
      keySegments: c.segments,
    });
    return { out: values(out), expected: bruteForce(c, values(q), values(k), values(v)) };
  });
}

const long: Case = { heads: 4, kvHeads: 2, queryLen: 600, keyLen: 600, headDim: 8, window: 100, slope: 0 };
const cases: [string, Case][] = [
  ['600 queries in three blocks, window 100, grouped-query heads', long],
  ['a window wider than a block (300) with ALiBi', { ...long, window: 300, slope: 0.01 }],
  ['queries appended to 590 cached keys', { ...long, queryLen: 10 }],
  ['a window of 1: each query sees only itself', { ...long, queryLen: 40, keyLen: 40, window: 1 }],
  [
    'packed documents with positions restarting per document',
    {
      ...long,
      queryLen: 520,
      keyLen: 520,
      segments: Int32Array.from({ length: 520 }, (_, i) => (i < 300 ? 0 : 1)),
      positions: Int32Array.from({ length: 520 }, (_, i) => (i < 300 ? i : i - 300)),
    },
  ],
];
for (const [name, c] of cases) {
  test(`sliding-window attention: ${name}`, () => {
    const { out, expected } = windowed(c);
    const error = relativeError(out, expected);
    assert.ok(error < 1e-12, `relative error ${error}`);
  });
}

test('sliding-window attention: gradients equal those of the same attention composed from plain ops', () => {
  const [H, N, D, W] = [2, 300, 4, 37];
  const { ours, composed } = tidy(() => {
    const g = new Generator(5);
    const make = (): Tensor => randn([1, H, N, D], { generator: g, dtype: 'float64', requiresGrad: true });
    const q = make(),
      k = make(),
      v = make();
    const weights = randn([1, H, N, D], { generator: g, dtype: 'float64' });
    sum(mul(attention(q, k, v, { scale: D ** -0.5, window: W }), weights)).backward();
    const ours = [q, k, v].map((t) => values(t.grad!));
    const q2 = make(),
      k2 = make(),
      v2 = make();
    for (const [from, to] of [
      [q, q2],
      [k, k2],
      [v, v2],
    ] as const)
      to.engine.copy(from.strided(), to.strided(), to.shape);
    const mask = new Float64Array(N * N).fill(-Infinity);
    for (let i = 0; i < N; i++) for (let j = Math.max(0, i - W + 1); j <= i; j++) mask[i * N + j] = 0;
    const scores = add(mul(matmul(q2, transpose(k2, -2, -1)), D ** -0.5), Tensor.fromArray(mask, [N, N], 'float64'));
    sum(mul(matmul(softmax(scores), v2), weights)).backward();
    return { ours, composed: [q2, k2, v2].map((t) => values(t.grad!)) };
  });
  for (const [i, name] of ['q', 'k', 'v'].entries()) {
    const error = relativeError(ours[i]!, composed[i]!);
    assert.ok(error < 1e-12, `gradient of ${name}: relative error ${error}`);
  }
});

test('sliding-window attention refuses the fused kernels and non-causal attention by name', () => {
  tidy(() => {
    const x = randn([1, 1, 4, 4], { generator: new Generator(1) });
    assert.throws(
      () => attention(x, x, x, { scale: 1, window: 2, implementation: 'fused' }),
      /fused kernels have no sliding window/,
    );
    assert.throws(() => attention(x, x, x, { scale: 1, window: 2, causal: false }), /needs causal attention/);
    assert.throws(() => attention(x, x, x, { scale: 1, window: 0 }), /sliding window 0 must be a positive integer/);
  });
});
