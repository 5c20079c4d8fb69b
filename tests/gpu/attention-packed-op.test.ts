// Packed documents through the attention op as the model calls it (src/model/attention.ts: segment ids and
// positions restarting per document, both as host + device arrays): on CUDA the op passes such positions as index
// positions (src/ops/attention-document-positions.ts) so that the Hopper kernels take them. Output and every gradient
// of the fused op in bfloat16 against the CPU's float64 reference path with the documents' own positions, for
// andromeda's attention features and for positions that are not document-consecutive (kept as given).
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { Generator } from '../../src/tensor/random.js';
import { attention, type AttentionOptions } from '../../src/ops/attention.js';
import { mul } from '../../src/ops/elementwise.js';
import { sum } from '../../src/ops/reduce.js';
import { alibiSlopes } from '../../src/model/alibi.js';
import { plainInverseFrequencies } from '../../src/model/rotary.js';
import { positionsFromSegments } from '../../src/model/context.js';
import { gpuTest, relativeError } from './harness.js';

interface PackedOpCase {
  name: string;
  batch: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rotaryDim: number;
  alibiHeads: number;
  /** Document lengths per batch row (row b: documents[b mod length]), repeated until the row of n tokens is full. */
  documents: number[][];
  n: number;
  /** Positions: 'restart' counts from 0 in each document, 'gaps' skips one after each document's start. */
  positions: 'restart' | 'gaps';
}

const cases: PackedOpCase[] = [
  {
    name: "andromeda's features (MQA d128, rotary 64 + xPos, key scale, ALiBi on 2 of 4), documents 1/7/64/65/500",
    batch: 2,
    heads: 4,
    kvHeads: 1,
    headDim: 128,
    rotaryDim: 64,
    alibiHeads: 2,
    documents: [
      [1, 7, 64, 65, 500],
      [500, 65, 64, 7, 1],
    ],
    n: 637,
    positions: 'restart',
  },
  {
    name: 'MHA d64, rotary 32 + xPos, positions with gaps (not index shifts: passed as given)',
    batch: 1,
    heads: 4,
    kvHeads: 4,
    headDim: 64,
    rotaryDim: 32,
    alibiHeads: 4,
    documents: [[130, 65, 7]],
    n: 300,
    positions: 'gaps',
  },
];

function layout(c: PackedOpCase): { segments: Int32Array; positions: Int32Array } {
  const segments = new Int32Array(c.batch * c.n);
  for (let b = 0; b < c.batch; b++) {
    const lengths = c.documents[b % c.documents.length]!;
    for (let t = 0, doc = 0, left = lengths[0]!; t < c.n; t++, left--) {
      if (left === 0) left = lengths[++doc % lengths.length]!;
      segments[b * c.n + t] = doc;
    }
  }
  const positions = positionsFromSegments(segments, c.batch, c.n);
  if (c.positions === 'gaps')
    for (let t = 0; t < positions.length; t++) if (positions[t]! > 0) positions[t] = positions[t]! + 1;
  return { segments, positions };
}

gpuTest(
  'attention op, packed documents: fused bfloat16 on CUDA equals the CPU float64 reference, output and gradients',
  () => {
    for (const c of cases) {
      tidy(() => {
        const gen = new Generator(29);
        const normals = (count: number, scale = 1): Float64Array =>
          Float64Array.from({ length: count }, () => scale * gen.normal());
        const round = (values: Float64Array): Float64Array =>
          Float64Array.from(Tensor.fromArray(values, [values.length], 'bfloat16').toArray());
        const qv = round(normals(c.batch * c.heads * c.n * c.headDim));
        const kv = round(normals(c.batch * c.kvHeads * c.n * c.headDim));
        const vv = round(normals(c.batch * c.kvHeads * c.n * c.headDim));
        const ksv = round(Float64Array.from({ length: c.heads * c.headDim }, () => 1 + 0.3 * gen.normal()));
        const wv = round(normals(c.batch * c.heads * c.n * c.headDim));
        const { segments, positions } = layout(c);
        const run = (device: 'cpu' | 'cuda'): Float64Array[] => {
          const type = device === 'cpu' ? 'float64' : 'bfloat16';
          const make = (values: Float64Array, shape: number[]): Tensor =>
            Tensor.fromArray(values, shape, type, device).requireGrad();
          const q = make(qv, [c.batch, c.heads, c.n, c.headDim]);
          const k = make(kv, [c.batch, c.kvHeads, c.n, c.headDim]);
          const v = make(vv, [c.batch, c.kvHeads, c.n, c.headDim]);
          const ks = make(ksv, [c.heads, c.headDim]);
          // One object per array, shared by queries and keys, as the model's sequence context passes them.
          const index = (values: Int32Array) => ({
            host: values,
            device: Tensor.fromArray(values, [c.batch, c.n], 'int32', device),
          });
          const pos = index(positions),
            seg = index(segments);
          const options: AttentionOptions = {
            scale: c.headDim ** -0.5,
            keyScale: ks,
            rotary: { dim: c.rotaryDim, invFreq: plainInverseFrequencies(c.rotaryDim, 10000), xposScaleBase: 512 },
            alibiSlopes: [...alibiSlopes(c.alibiHeads), ...new Array(c.heads - c.alibiHeads).fill(0)],
            queryPositions: pos,
            keyPositions: pos,
            querySegments: seg,
            keySegments: seg,
            implementation: device === 'cpu' ? 'reference' : 'fused',
          };
          const out = attention(q, k, v, options);
          sum(mul(out, Tensor.fromArray(wv, out.shape, type, device))).backward();
          return [out, q.grad!, k.grad!, v.grad!, ks.grad!].map((t) => Float64Array.from(t.toArray()));
        };
        const want = run('cpu'),
          got = run('cuda');
        const names = ['out', 'dq', 'dk', 'dv', 'dKeyScale'];
        const errors = want.map((w, i) => relativeError(w, got[i]!));
        console.log(`  ${c.name.padEnd(100)} ${errors.map((e, i) => `${names[i]} ${e.toExponential(1)}`).join('  ')}`);
        errors.forEach((e, i) =>
          assert.ok(e <= 2e-2, `${c.name}: ${names[i]} relative error ${e.toExponential(2)} > 2e-2`),
        );
      });
    }
  },
);
