// The products an inference step runs with no gradient recorded, each in one engine call: linearSharedInput
// (Engine.matmulSharedInput: one input through several weights, as a decode step's query, key and value
// projections) and linearBiasGelu (Engine.matmulBiasGelu: a feed-forward's first layer). On the CPU engine each
// must give the bits of the ops it stands for; with gradients recorded they are those ops.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from '../../src/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Generator } from '../../src/tensor/random.js';
import { linearSharedInput } from '../../src/ops/matmul.js';
import { biasGelu, linearBiasGelu } from '../../src/ops/fused/bias-gelu.js';
import { randomValues } from '../helpers/gradcheck.js';

const { tidy } = A;

describe('linearSharedInput on the CPU engine', () => {
  for (const dtype of ['float64', 'float32', 'bfloat16'] as DType[]) {
    test(`each product equals linear(x, w) bit for bit (${dtype}; 1–4 weights, 1–9 rows, a strided x)`, () => {
      const gen = new Generator(21);
      for (const rows of [1, 3, 9])
        for (const outs of [[5], [7, 2], [12, 3, 3], [4, 1, 6, 2]]) {
          tidy(() => {
            const inF = 16;
            // x as the transpose of a [inF, rows] tensor: not contiguous.
            const x = A.transpose(Tensor.fromArray(randomValues([inF, rows], gen), [inF, rows], dtype), 0, 1);
            const ws = outs.map((n) => Tensor.fromArray(randomValues([n, inF], gen), [n, inF], dtype));
            const shared = linearSharedInput(x, ws);
            assert.equal(shared.length, ws.length);
            ws.forEach((w, i) => {
              const alone = A.linear(x, w);
              assert.deepEqual(shared[i]!.shape, [rows, outs[i]!]);
              assert.deepEqual(shared[i]!.toArray(), alone.toArray(), `rows ${rows}, weights ${outs}: part ${i}`);
            });
          });
        }
    });
  }

  test('with gradients recorded it is linear per weight: the same values and the usual gradients', () => {
    tidy(() => {
      const gen = new Generator(3);
      const x = Tensor.fromArray(randomValues([2, 6], gen), [2, 6], 'float64').requireGrad(true);
      const w1 = Tensor.fromArray(randomValues([4, 6], gen), [4, 6], 'float64').requireGrad(true);
      const w2 = Tensor.fromArray(randomValues([3, 6], gen), [3, 6], 'float64').requireGrad(true);
      const [y1, y2] = linearSharedInput(x, [w1, w2]);
      A.add(A.sum(y1!), A.sum(A.mul(y2!, y2!))).backward();
      const gx = Float64Array.from(x.grad!.toArray());
      x.grad = null;
      A.add(A.sum(A.linear(x, w1)), A.sum(A.mul(A.linear(x, w2), A.linear(x, w2)))).backward();
      assert.deepEqual(gx, Float64Array.from(x.grad!.toArray()));
    });
  });

  test('a weight whose in-features differ from x, or another dtype, is refused naming it', () => {
    tidy(() => {
      const x = A.zeros([2, 8], 'float32');
      assert.throws(
        () => linearSharedInput(x, [A.zeros([3, 8], 'float32'), A.zeros([3, 7], 'float32')]),
        /linearSharedInput: input \[2, 8\] does not match weights\[1\] \[3, 7\]/,
      );
      assert.throws(
        () => linearSharedInput(x, [A.zeros([3, 8], 'float32'), A.zeros([3, 8], 'float64')]),
        /linearSharedInput/,
      );
    });
  });

  test('no rows: empty results; zero in-features: zeros, as linear gives', () => {
    tidy(() => {
      const [a, b] = linearSharedInput(A.zeros([0, 8], 'float32'), [A.ones([3, 8], 'float32'), A.ones([2, 8])]);
      assert.deepEqual(a!.shape, [0, 3]);
      assert.deepEqual(b!.shape, [0, 2]);
      const [c] = linearSharedInput(A.zeros([2, 0], 'float32'), [A.ones([3, 0], 'float32'), A.ones([2, 0])]);
      assert.deepEqual(Array.from(c!.toArray()), [0, 0, 0, 0, 0, 0]);
    });
  });
});

// linearBiasGelu (Engine.matmulBiasGelu): a feed-forward's first layer in one engine call at inference. On the
// CPU engine it must give the bits of linear then biasGelu, so that cached and uncached decoding agree.
describe('linearBiasGelu on the CPU engine', () => {
  for (const dtype of ['float64', 'float32', 'bfloat16'] as DType[]) {
    test(`equals biasGelu(linear(x, w), b) bit for bit (${dtype}; 1, 5 and 9 rows, a strided x)`, () => {
      const gen = new Generator(8);
      for (const rows of [1, 5, 9])
        tidy(() => {
          const [inF, outF] = [24, 17];
          const x = A.transpose(Tensor.fromArray(randomValues([inF, rows], gen), [inF, rows], dtype), 0, 1);
          const w = Tensor.fromArray(randomValues([outF, inF], gen), [outF, inF], dtype);
          const b = Tensor.fromArray(randomValues([outF], gen), [outF], dtype);
          assert.deepEqual(linearBiasGelu(x, w, b).toArray(), biasGelu(A.linear(x, w), b).toArray(), `rows ${rows}`);
        });
    });
  }

  test('with gradients recorded it is the two ops, gradients included; mismatched shapes are refused', () => {
    tidy(() => {
      const gen = new Generator(4);
      const x = Tensor.fromArray(randomValues([3, 5], gen), [3, 5], 'float64').requireGrad(true);
      const w = Tensor.fromArray(randomValues([4, 5], gen), [4, 5], 'float64');
      const b = Tensor.fromArray(randomValues([4], gen), [4], 'float64');
      A.sum(linearBiasGelu(x, w, b)).backward();
      const fused = Float64Array.from(x.grad!.toArray());
      x.grad = null;
      A.sum(biasGelu(A.linear(x, w), b)).backward();
      assert.deepEqual(fused, Float64Array.from(x.grad!.toArray()));
      assert.throws(() => linearBiasGelu(A.zeros([2, 5]), A.zeros([4, 6]), A.zeros([4])), /linearBiasGelu: input/);
      assert.throws(() => linearBiasGelu(A.zeros([2, 5]), A.zeros([4, 5]), A.zeros([3])), /linearBiasGelu: bias/);
    });
  });
});
