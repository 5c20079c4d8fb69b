// The reference attention form on the CUDA engine against the CPU engine (itself checked against
// float64 host versions in tests/ops/reference-attention-kernels.test.ts): the maskedSoftmax kernel
// (16-byte vector rows and the scalar path for odd or misaligned rows, ALiBi, causal offsets,
// documents, positions through row windows, empty rows, in place), the rotary/xPos kernel forward and
// transposed, and the whole attention op with implementation 'reference' in bfloat16 and float32 (output
// and every gradient) against the CPU's float64 reference path on the same rounded inputs.
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { Generator } from '../../src/tensor/random.js';
import type { DType } from '../../src/tensor/dtype.js';
import { maskedSoftmax, type ScoreMask } from '../../src/ops/masked-softmax.js';
import { rotary, type RotarySpec } from '../../src/ops/rotary.js';
import type { TokenRows } from '../../src/ops/token-rows.js';
import { attention, type AttentionOptions } from '../../src/ops/attention.js';
import { mul } from '../../src/ops/elementwise.js';
import { sum } from '../../src/ops/reduce.js';
import { alibiSlopes } from '../../src/model/alibi.js';
import { plainInverseFrequencies } from '../../src/model/rotary.js';
import { gpuTest, relativeError } from './harness.js';

const KERNEL_TOLERANCE: Record<string, number> = { float64: 1e-12, float32: 1e-5, bfloat16: 1e-2, float16: 2e-3 };

const normals = (count: number, gen: Generator, scale = 1): Float64Array =>
  Float64Array.from({ length: count }, () => scale * gen.normal());
const host = (t: Tensor): Float64Array => Float64Array.from(t.toArray());

/** The same int32 rows on both engines. */
function twinRows(values: Int32Array, offset: number, stride: number): { cpu: TokenRows; gpu: TokenRows } {
  return {
    cpu: { data: Tensor.fromArray(values, [values.length], 'int32', 'cpu'), offset, stride },
    gpu: { data: Tensor.fromArray(values, [values.length], 'int32', 'cuda'), offset, stride },
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
  positions?: boolean;
  segments?: boolean;
}

const softmaxCases: SoftmaxCase[] = [
  {
    name: 'odd rows (scalar path), causal offset 2, ALiBi',
    batch: 2,
    heads: 3,
    queryLen: 5,
    keyLen: 7,
    causal: true,
    queryOffset: 2,
    alibi: true,
  },
  {
    name: 'rows of 2,048 keys (vector path), causal square, ALiBi on 3 of 4 heads',
    batch: 1,
    heads: 4,
    queryLen: 48,
    keyLen: 2048,
    causal: true,
    queryOffset: 2000,
    alibi: true,
  },
  {
    name: 'positions and segments through row windows, causal',
    batch: 2,
    heads: 2,
    queryLen: 24,
    keyLen: 64,
    causal: true,
    queryOffset: 40,
    alibi: true,
    positions: true,
    segments: true,
  },
  {
    name: 'non-causal documents with a row that sees no key',
    batch: 2,
    heads: 2,
    queryLen: 6,
    keyLen: 40,
    causal: false,
    queryOffset: 0,
    alibi: false,
    segments: true,
  },
  {
    name: 'rows of 1,000 keys (not a multiple of 16 bytes in bf16), non-causal',
    batch: 1,
    heads: 2,
    queryLen: 9,
    keyLen: 1000,
    causal: false,
    queryOffset: 0,
    alibi: true,
  },
];

function softmaxMasks(c: SoftmaxCase): { cpu: ScoreMask; gpu: ScoreMask } {
  const window = (length: number, make: (b: number, i: number) => number) => {
    const stride = length + 5;
    const values = new Int32Array(3 + c.batch * stride).fill(-9);
    for (let b = 0; b < c.batch; b++) for (let i = 0; i < length; i++) values[3 + b * stride + i] = make(b, i);
    return twinRows(values, 3, stride);
  };
  const qp = c.positions ? window(c.queryLen, (b, i) => 50 * b + 2 * i + 40) : null;
  const kp = c.positions ? window(c.keyLen, (b, j) => 50 * b + j) : null;
  const qs = c.segments ? window(c.queryLen, (b, i) => (b === 1 && i === 2 && !c.causal ? 7 : i % 2)) : null;
  const ks = c.segments ? window(c.keyLen, (_b, j) => (j < c.keyLen / 2 ? 0 : 1)) : null;
  const slopes = c.alibi ? Float64Array.from([...alibiSlopes(c.heads - 1), 0]) : null;
  const mask = (side: 'cpu' | 'gpu'): ScoreMask => ({
    causal: c.causal,
    queryOffset: c.queryOffset,
    alibiSlopes: slopes,
    queryPositions: qp?.[side] ?? null,
    keyPositions: kp?.[side] ?? null,
    querySegments: qs?.[side] ?? null,
    keySegments: ks?.[side] ?? null,
  });
  return { cpu: mask('cpu'), gpu: mask('gpu') };
}

gpuTest(
  'maskedSoftmax on CUDA equals the CPU engine (float32, bfloat16, float16, float64; vector and scalar rows; in place)',
  () => {
    for (const c of softmaxCases) {
      for (const dtype of ['float32', 'bfloat16', 'float16', 'float64'] as DType[]) {
        tidy(() => {
          const masks = softmaxMasks(c);
          const shape = [c.batch, c.heads, c.queryLen, c.keyLen];
          const values = normals(
            shape.reduce((a, b) => a * b, 1),
            new Generator(7),
            3,
          );
          const want = host(maskedSoftmax(Tensor.fromArray(values, shape, dtype, 'cpu'), masks.cpu));
          const scores = Tensor.fromArray(values, shape, dtype, 'cuda');
          const got = host(maskedSoftmax(scores, masks.gpu));
          const err = relativeError(want, got);
          console.log(`  maskedSoftmax ${dtype.padEnd(8)} ${c.name.padEnd(78)} ${err.toExponential(1)}`);
          assert.ok(err <= KERNEL_TOLERANCE[dtype]!, `${c.name} (${dtype}): relative error ${err.toExponential(2)}`);
          want.forEach((w, i) => {
            if (w === 0)
              assert.equal(got[i], 0, `${c.name} (${dtype}): element ${i} is masked on the CPU but ${got[i]} on CUDA`);
          });
          const inPlace = maskedSoftmax(scores, masks.gpu, { inPlace: true });
          assert.equal(inPlace.storage, scores.storage);
          assert.deepEqual(Array.from(host(inPlace)), Array.from(got), `${c.name} (${dtype}): in place differs`);
        });
      }
    }
  },
);

gpuTest('maskedSoftmax on CUDA reads misaligned rows (an odd element offset) through the scalar path', () =>
  tidy(() => {
    const c = softmaxCases[1]!;
    const masks = softmaxMasks(c);
    const shape = [c.batch, c.heads, c.queryLen, c.keyLen];
    const count = shape.reduce((a, b) => a * b, 1);
    const values = normals(count + 1, new Generator(3), 3);
    const strides = [c.heads * c.queryLen * c.keyLen, c.queryLen * c.keyLen, c.keyLen, 1];
    const want = host(maskedSoftmax(Tensor.fromArray(values.subarray(1), shape, 'bfloat16', 'cpu'), masks.cpu));
    const base = Tensor.fromArray(values, [count + 1], 'bfloat16', 'cuda');
    const got = host(maskedSoftmax(base.view(shape, strides, 1), masks.gpu));
    const err = relativeError(want, got);
    assert.ok(err <= KERNEL_TOLERANCE.bfloat16!, `relative error ${err.toExponential(2)}`);
  }),
);

gpuTest('maskedSoftmax backward on CUDA equals the CPU engine', () => {
  for (const dtype of ['float32', 'bfloat16'] as DType[]) {
    tidy(() => {
      const c = softmaxCases[2]!;
      const masks = softmaxMasks(c);
      const shape = [c.batch, c.heads, c.queryLen, c.keyLen];
      const gen = new Generator(5);
      const values = normals(
          shape.reduce((a, b) => a * b, 1),
          gen,
        ),
        weights = normals(values.length, gen);
      const grads = (['cpu', 'cuda'] as const).map((device) => {
        const s = Tensor.fromArray(values, shape, dtype, device).requireGrad();
        sum(
          mul(
            maskedSoftmax(s, device === 'cpu' ? masks.cpu : masks.gpu),
            Tensor.fromArray(weights, shape, dtype, device),
          ),
        ).backward();
        return host(s.grad!);
      });
      const err = relativeError(grads[0]!, grads[1]!);
      assert.ok(
        err <= (dtype === 'float32' ? 1e-5 : 2e-2),
        `${dtype}: gradient relative error ${err.toExponential(2)}`,
      );
    });
  }
});

interface RotaryCase {
  name: string;
  batch: number;
  heads: number;
  length: number;
  headDim: number;
  rotaryDim: number;
  positions?: 'window' | 'far';
  xpos?: { anchor: number; sign: 1 | -1; minDistance: number };
  multiplier: number;
}

const rotaryCases: RotaryCase[] = [
  {
    name: 'andromeda-3b shape (24 heads × 128, all rotated), query xPos around the middle, scale',
    batch: 1,
    heads: 24,
    length: 300,
    headDim: 128,
    rotaryDim: 128,
    xpos: { anchor: 150, sign: 1, minDistance: -Infinity },
    multiplier: 0.088,
  },
  {
    name: 'partial rotation (16 of 64), positions through a window, key xPos clamped',
    batch: 2,
    heads: 3,
    length: 37,
    headDim: 64,
    rotaryDim: 16,
    positions: 'window',
    xpos: { anchor: 30, sign: -1, minDistance: -20 },
    multiplier: 1,
  },
  {
    name: 'positions near 10^5 (angles reduced in double)',
    batch: 2,
    heads: 2,
    length: 20,
    headDim: 32,
    rotaryDim: 32,
    positions: 'far',
    multiplier: 1,
  },
  {
    name: 'nothing rotated: the multiplier alone',
    batch: 1,
    heads: 2,
    length: 5,
    headDim: 8,
    rotaryDim: 0,
    multiplier: -1.5,
  },
];

gpuTest('rotary on CUDA equals the CPU engine, forward and transposed (backward)', () => {
  for (const c of rotaryCases) {
    for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
      tidy(() => {
        let pos: { cpu: TokenRows; gpu: TokenRows } | null = null;
        if (c.positions) {
          const stride = c.length + 4;
          const values = new Int32Array(2 + c.batch * stride);
          for (let b = 0; b < c.batch; b++)
            for (let j = 0; j < c.length; j++)
              values[2 + b * stride + j] = c.positions === 'far' ? 98_765 + 1_013 * j + b : 3 * b + j;
          pos = twinRows(values, 2, stride);
        }
        const spec = (side: 'cpu' | 'gpu'): RotarySpec => ({
          rotaryDim: c.rotaryDim,
          invFreq: plainInverseFrequencies(c.rotaryDim, 10000),
          positions: pos?.[side] ?? null,
          positionOffset: 7,
          xpos: c.xpos ? { scaleBase: 512, ...c.xpos } : null,
          multiplier: c.multiplier,
        });
        const shape = [c.batch, c.heads, c.length, c.headDim];
        const gen = new Generator(9);
        const values = normals(
            shape.reduce((a, b) => a * b, 1),
            gen,
          ),
          weights = normals(values.length, gen);
        const results = (['cpu', 'cuda'] as const).map((device) => {
          const x = Tensor.fromArray(values, shape, dtype, device).requireGrad();
          const y = rotary(x, spec(device === 'cpu' ? 'cpu' : 'gpu'));
          sum(mul(y, Tensor.fromArray(weights, shape, dtype, device))).backward();
          return { y: host(y), g: host(x.grad!) };
        });
        // Far positions: float32 sine/cosine of angles reduced in double agree with the CPU's double ones to ~1e-7.
        const tol = KERNEL_TOLERANCE[dtype]!;
        const ey = relativeError(results[0]!.y, results[1]!.y),
          eg = relativeError(results[0]!.g, results[1]!.g);
        console.log(
          `  rotary ${dtype.padEnd(8)} ${c.name.padEnd(90)} out ${ey.toExponential(1)} grad ${eg.toExponential(1)}`,
        );
        assert.ok(ey <= tol, `${c.name} (${dtype}): output relative error ${ey.toExponential(2)}`);
        assert.ok(eg <= tol, `${c.name} (${dtype}): gradient relative error ${eg.toExponential(2)}`);
      });
    }
  }
});

interface AttentionCase {
  name: string;
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
  documents?: boolean;
}

const attentionCases: AttentionCase[] = [
  {
    name: 'MQA, key scale, partial rotary, xPos, ALiBi on 3 of 4 heads',
    batch: 2,
    heads: 4,
    kvHeads: 1,
    queryLen: 67,
    keyLen: 67,
    headDim: 32,
    rotaryDim: 16,
    xpos: true,
    alibiHeads: 3,
    keyScale: true,
  },
  {
    name: 'GQA (2 KV heads), packed documents with positions reset per document',
    batch: 2,
    heads: 4,
    kvHeads: 2,
    queryLen: 40,
    keyLen: 40,
    headDim: 16,
    rotaryDim: 16,
    xpos: true,
    alibiHeads: 2,
    keyScale: false,
    documents: true,
  },
  {
    name: 'MHA, queries appended to 60 cached keys',
    batch: 1,
    heads: 2,
    kvHeads: 2,
    queryLen: 5,
    keyLen: 65,
    headDim: 32,
    rotaryDim: 32,
    xpos: true,
    alibiHeads: 2,
    keyScale: false,
  },
  {
    name: 'one KV head, 1,024 tokens, 8 heads × 64 (the andromeda shape, scaled down)',
    batch: 1,
    heads: 8,
    kvHeads: 1,
    queryLen: 1024,
    keyLen: 1024,
    headDim: 64,
    rotaryDim: 64,
    xpos: true,
    alibiHeads: 4,
    keyScale: true,
  },
];

// The CPU engine's own bfloat16 run of these cases gives about 4e-3 (out) and 5e-3 (gradients).
const ATTENTION_BOUNDS: Record<string, { out: number; grad: number }> = {
  float32: { out: 1e-5, grad: 1e-5 },
  bfloat16: { out: 1.5e-2, grad: 2e-2 },
};

gpuTest(
  'attention (implementation reference) on CUDA in bfloat16 and float32 equals the CPU float64 reference path, ' +
    'output and gradients',
  () => {
    for (const c of attentionCases) {
      for (const dtype of ['bfloat16', 'float32'] as DType[]) {
        tidy(() => {
          const gen = new Generator(13);
          const round = (values: Float64Array): Float64Array =>
            Float64Array.from(Tensor.fromArray(values, [values.length], dtype).toArray());
          const qv = round(normals(c.batch * c.heads * c.queryLen * c.headDim, gen));
          const kv = round(normals(c.batch * c.kvHeads * c.keyLen * c.headDim, gen));
          const vv = round(normals(c.batch * c.kvHeads * c.keyLen * c.headDim, gen));
          const ksv = c.keyScale
            ? round(Float64Array.from({ length: c.heads * c.headDim }, () => 1 + 0.3 * gen.normal()))
            : null;
          const wv = round(normals(c.batch * c.heads * c.queryLen * c.headDim, gen));
          let positions: Int32Array | undefined, segments: Int32Array | undefined;
          if (c.documents) {
            segments = Int32Array.from(
              { length: c.batch * c.queryLen },
              (_, t) => Math.floor((t % c.queryLen) / 13) + (t >= c.queryLen ? 5 : 0),
            );
            positions = Int32Array.from({ length: c.batch * c.queryLen }, (_, t) => (t % c.queryLen) % 13);
          }
          const run = (device: 'cpu' | 'cuda', type: DType) => {
            const make = (values: Float64Array, shape: number[]) =>
              Tensor.fromArray(values, shape, type, device).requireGrad();
            const q = make(qv, [c.batch, c.heads, c.queryLen, c.headDim]);
            const k = make(kv, [c.batch, c.kvHeads, c.keyLen, c.headDim]);
            const v = make(vv, [c.batch, c.kvHeads, c.keyLen, c.headDim]);
            const ks = ksv ? make(ksv, [c.heads, c.headDim]) : null;
            const index = (values: Int32Array | undefined) =>
              values ? { host: values, device: Tensor.fromArray(values, [values.length], 'int32', device) } : null;
            const options: AttentionOptions = {
              scale: c.headDim ** -0.5,
              keyScale: ks,
              rotary: {
                dim: c.rotaryDim,
                invFreq: plainInverseFrequencies(c.rotaryDim, 10000),
                xposScaleBase: c.xpos ? 512 : 0,
              },
              alibiSlopes: [...alibiSlopes(c.alibiHeads), ...new Array(c.heads - c.alibiHeads).fill(0)],
              queryPositions: index(positions),
              keyPositions: index(positions),
              querySegments: index(segments),
              keySegments: index(segments),
              implementation: 'reference',
            };
            const out = attention(q, k, v, options);
            sum(mul(out, Tensor.fromArray(wv, out.shape, type, device))).backward();
            return [out, q.grad!, k.grad!, v.grad!, ...(ks ? [ks.grad!] : [])].map(host);
          };
          const want = run('cpu', 'float64'),
            got = run('cuda', dtype);
          const names = ['out', 'dq', 'dk', 'dv', 'dKeyScale'];
          const errors = want.map((w, i) => relativeError(w, got[i]!));
          console.log(
            `  attention ${dtype.padEnd(8)} ${c.name.padEnd(80)} ${errors
              .map((e, i) => `${names[i]} ${e.toExponential(1)}`)
              .join('  ')}`,
          );
          const bound = ATTENTION_BOUNDS[dtype]!;
          errors.forEach((e, i) =>
            assert.ok(
              e <= (i === 0 ? bound.out : bound.grad),
              `${c.name} (${dtype}): ${names[i]} relative error ${e.toExponential(2)}`,
            ),
          );
        });
      }
    }
  },
);
