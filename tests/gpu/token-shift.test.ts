// The CUDA engine's one-pass token shift (Engine.tokenShift) against the CPU engine's:
// values and gradients, shifts 1–3, chunk widths with and without 16-byte packs, sequences shorter than
// the shift, batch > 1.
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { shiftTokens } from '../../src/ops/fused/token-shift.js';
import { add, mul } from '../../src/ops/elementwise.js';
import { sum } from '../../src/ops/reduce.js';
import { Generator } from '../../src/tensor/random.js';
import type { DType } from '../../src/tensor/dtype.js';
import type { Engine } from '../../src/engine/engine.js';
import { gpu, gpuTest } from './harness.js';

function run(
  device: string,
  dtype: DType,
  shape: number[],
  shifts: number,
  xs: Float64Array,
  rs: Float64Array,
): { y: ArrayLike<number>; gx: ArrayLike<number> } {
  const x = Tensor.fromArray(xs, shape, dtype, device).requireGrad(true);
  const r = Tensor.fromArray(rs, shape, dtype, device);
  const y = shiftTokens(x, shifts);
  const loss = sum(mul(y, r));
  loss.backward();
  const out = { y: y.toArray(), gx: x.grad!.toArray() };
  for (const t of [x, r, y, loss]) t.dispose();
  return out;
}

gpuTest('tokenShift: one kernel each way, equal to the CPU engine', () => {
  const gen = new Generator(9);
  for (const [batch, n, dim, shifts] of [
    [1, 37, 2560, 1],
    [2, 9, 64, 1],
    [2, 5, 30, 2],
    [1, 2, 48, 3],
    [3, 1, 16, 1],
    [1, 11, 7, 1],
  ]) {
    const count = batch * n * dim;
    const xs = Float64Array.from({ length: count }, () => gen.normal()),
      rs = Float64Array.from({ length: count }, () => gen.normal());
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      const want = run('cpu', dtype, [batch, n, dim], shifts, xs, rs),
        got = run('cuda', dtype, [batch, n, dim], shifts, xs, rs);
      assert.deepEqual(
        Array.from(got.y),
        Array.from(want.y),
        `values [${batch}, ${n}, ${dim}] shifts ${shifts} ${dtype}`,
      );
      assert.deepEqual(
        Array.from(got.gx),
        Array.from(want.gx),
        `gradients [${batch}, ${n}, ${dim}] shifts ${shifts} ${dtype}`,
      );
    }
  }
});

/** Runs fn with every call of the engine's tokenShift reported to `seen` first. */
function watchingTokenShift(
  seen: (...args: Parameters<NonNullable<Engine['tokenShift']>>) => void,
  fn: () => void,
): void {
  const engine = gpu();
  const original = engine.tokenShift!.bind(engine);
  engine.tokenShift = (...args) => {
    seen(...args);
    original(...args);
  };
  try {
    fn();
  } finally {
    engine.tokenShift = original;
  }
}

gpuTest(
  'tokenShift: the backward adds into the gradient a residual path already gave the input (one kernel, no add)',
  () => {
    const accumulated: boolean[] = [];
    watchingTokenShift(
      (_x, _out, _batch, _n, _dim, _shifts, backward, accumulate) => {
        if (backward) accumulated.push(accumulate === true);
      },
      () => {
        const gen = new Generator(13);
        for (const [batch, n, dim, shifts] of [
          [2, 17, 2560, 1],
          [1, 9, 30, 2],
        ]) {
          const shape = [batch, n, dim],
            count = batch * n * dim;
          const xs = Float64Array.from({ length: count }, () => gen.normal());
          const rs = Float64Array.from({ length: count }, () => gen.normal()),
            qs = Float64Array.from({ length: count }, () => gen.normal());
          for (const dtype of ['float32', 'bfloat16'] as DType[]) {
            // h feeds the shift and a "residual" term; the residual's gradient reaches h first (reverse order).
            const gradient = (device: string): number[] => {
              const x = Tensor.fromArray(xs, shape, dtype, device).requireGrad(true);
              const r = Tensor.fromArray(rs, shape, dtype, device),
                q = Tensor.fromArray(qs, shape, dtype, device);
              const h = mul(x, 2);
              const loss = add(sum(mul(shiftTokens(h, shifts), r)), sum(mul(h, q)));
              loss.backward();
              const gx = Array.from(x.grad!.toArray());
              for (const t of [x, r, q, h, loss]) t.dispose();
              return gx;
            };
            accumulated.length = 0;
            const got = gradient('cuda');
            assert.deepEqual(accumulated, [true], `the shift's backward accumulated [${shape}] ${dtype}`);
            assert.deepEqual(got, gradient('cpu'), `gradients [${shape}] shifts ${shifts} ${dtype}`);
          }
        }
      },
    );
  },
);

gpuTest(
  'tokenShift with document boundaries: one kernel each way given the segment ids on the device, equal to the CPU ' +
    'engine',
  () => {
    let withSegments = 0;
    watchingTokenShift(
      (_x, _out, _batch, _n, _dim, _shifts, _backward, _accumulate, segments) => {
        if (segments) withSegments++;
      },
      () => {
        const gen = new Generator(17);
        for (const [batch, n, dim, shifts] of [
          [2, 23, 2560, 1],
          [3, 9, 30, 2],
          [1, 12, 48, 3],
        ]) {
          const shape = [batch, n, dim],
            count = batch * n * dim;
          // Documents of random lengths (1–6 tokens) per row, ids rising along the row.
          const ids = new Int32Array(batch * n);
          for (let b = 0; b < batch; b++) {
            let doc = 0,
              left = 1 + Math.floor(gen.uniform() * 6);
            for (let t = 0; t < n; t++) {
              if (left-- === 0) {
                doc++;
                left = Math.floor(gen.uniform() * 6);
              }
              ids[b * n + t] = doc;
            }
          }
          const xs = Float64Array.from({ length: count }, () => gen.normal()),
            rs = Float64Array.from({ length: count }, () => gen.normal());
          for (const dtype of ['float32', 'bfloat16'] as DType[]) {
            const result = (device: string): { y: number[]; gx: number[] } => {
              const x = Tensor.fromArray(xs, shape, dtype, device).requireGrad(true);
              const r = Tensor.fromArray(rs, shape, dtype, device),
                segments = Tensor.fromArray(ids, [batch, n], 'int32', device);
              const y = shiftTokens(x, shifts, ids, segments);
              const loss = sum(mul(y, r));
              loss.backward();
              const out = { y: Array.from(y.toArray()), gx: Array.from(x.grad!.toArray()) };
              for (const t of [x, r, segments, y, loss]) t.dispose();
              return out;
            };
            withSegments = 0;
            const got = result('cuda');
            assert.equal(withSegments, 2, `the kernel ran both ways with the segment ids [${shape}] ${dtype}`);
            const want = result('cpu');
            assert.deepEqual(got.y, want.y, `values [${shape}] shifts ${shifts} ${dtype}`);
            assert.deepEqual(got.gx, want.gx, `gradients [${shape}] shifts ${shifts} ${dtype}`);
          }
        }
      },
    );
  },
);
