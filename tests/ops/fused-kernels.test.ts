// The CPU forms of the fused ops that the CUDA engine had alone (native/fused/<op>/cpu.cc): token shift, head
// norm, matmul with a bias epilogue, many-tensor AdamW with weight copies, Σx² over many buffers, the unchecked
// embedding gather. Each against its composed form or a float64 reference (and finite differences where it has
// a gradient), and each sum over rows or chunks with the same bits for every thread count.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from '../../src/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Generator } from '../../src/tensor/random.js';
import type { CpuEngine } from '../../src/engine/cpu.js';
import type { AdamWArgs, AdamWItem } from '../../src/engine/engine.js';
import { adamwTestArgs } from '../helpers/adamw-args.js';
import { shiftTokens, shiftTokensComposed } from '../../src/ops/fused/token-shift.js';
import { headNorm, headNormComposed } from '../../src/ops/fused/head-norm.js';
import { addNorm, biasGelu } from '../../src/ops/index.js';
import { gradcheck, randomValues } from '../helpers/gradcheck.js';

const { tidy } = A;
const engine = A.getEngine('cpu') as CpuEngine;
const defaultThreads = engine.threads();
after(() => engine.threads(defaultThreads));

/** fn's result with the CPU engine on each thread count in turn. */
function onThreads<T>(counts: readonly number[], fn: () => T): T[] {
  try {
    return counts.map((n) => {
      engine.threads(n);
      return fn();
    });
  } finally {
    engine.threads(defaultThreads);
  }
}

function leaf(values: ArrayLike<number>, shape: number[], dtype: DType): Tensor {
  return Tensor.fromArray(values, shape, dtype, 'cpu').requireGrad(true);
}

function relativeError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

/** The output of fn(x) and the gradient of Σ fn(x)·r + Σ x·q (x also feeding a residual) with respect to x. */
function shiftRun(
  fn: (x: Tensor) => Tensor,
  xs: Float64Array,
  rs: Float64Array,
  qs: Float64Array,
  shape: number[],
  dtype: DType,
): { y: number[]; gx: number[] } {
  return tidy(() => {
    const x = leaf(xs, shape, dtype);
    const y = fn(x);
    A.add(
      A.sum(A.mul(y, Tensor.fromArray(rs, shape, dtype))),
      A.sum(A.mul(x, Tensor.fromArray(qs, shape, dtype))),
    ).backward();
    return { y: Array.from(y.toArray()), gx: Array.from(x.grad!.toArray()) };
  });
}

describe('tokenShift on the CPU engine', () => {
  const cases: [number, number, number, number, boolean][] = [
    // [batch, n, dim, shifts, segmented]
    [2, 7, 16, 1, false],
    [2, 5, 30, 2, true],
    [1, 2, 48, 3, false],
    [3, 1, 16, 1, true],
    [1, 11, 7, 1, false],
    [2, 9, 2, 3, true],
  ];
  for (const [batch, n, dim, shifts, segmented] of cases) {
    for (const dtype of ['float32', 'float64', 'bfloat16', 'float16'] as DType[]) {
      test(`[${batch}, ${n}, ${dim}] shifts ${shifts}${
        segmented ? ', packed documents' : ''
      } (${dtype}): the kernel equals the strided copies, values and accumulated gradients`, () => {
        const gen = new Generator(batch * 100 + n * 10 + dim);
        const count = batch * n * dim;
        const [xs, rs, qs] = [0, 1, 2].map(() => randomValues([count], gen));
        const segments = segmented
          ? Int32Array.from({ length: batch * n }, (_, i) => (i % n < Math.ceil(n / 2) ? 3 : 8))
          : null;
        const shape = [batch, n, dim];
        const fused = shiftRun((x) => shiftTokens(x, shifts, segments), xs!, rs!, qs!, shape, dtype);
        const composed = shiftRun((x) => shiftTokensComposed(x, shifts, segments), xs!, rs!, qs!, shape, dtype);
        assert.deepEqual(fused.y, composed.y, 'values');
        assert.deepEqual(fused.gx, composed.gx, 'gradients');
      });
    }
  }

  test('document ids already on the device give the same result as host ids', () => {
    tidy(() => {
      const gen = new Generator(4);
      const xs = randomValues([2 * 6 * 9], gen);
      const segments = Int32Array.from([0, 0, 1, 1, 1, 2, 5, 5, 5, 5, 6, 6]);
      const x = Tensor.fromArray(xs, [2, 6, 9], 'float64');
      const onDevice = shiftTokens(x, 2, segments, Tensor.fromArray(segments, [2, 6], 'int32')).toArray();
      assert.deepEqual(Array.from(onDevice), Array.from(shiftTokens(x, 2, segments).toArray()));
      assert.deepEqual(Array.from(onDevice), Array.from(shiftTokensComposed(x, 2, segments).toArray()));
    });
  });

  test('gradient matches float64 finite differences (with document boundaries)', () => {
    const segments = Int32Array.from([0, 0, 1, 1, 1, 4, 4, 7]);
    gradcheck('shiftTokens', (x) => shiftTokens(x!, 2, segments), [{ shape: [2, 4, 7] }], { seed: 3 });
  });

  test('bad shapes and shift counts are refused before any kernel runs', () => {
    tidy(() => {
      const x = A.zeros([2, 3, 4], 'float32');
      assert.throws(() => shiftTokens(x, -1), /shifts must be an integer ≥ 0, got -1/);
      assert.throws(() => shiftTokens(A.zeros([3, 4], 'float32'), 1), /x must be \[batch, n, dim\], got \[3, 4\]/);
      assert.throws(() => shiftTokens(x, 1, new Int32Array(5)), /5 segment ids for \[batch, n\] = \[2, 3\]/);
    });
  });
});

describe('headNorm on the CPU engine', () => {
  for (const dtype of ['float64', 'float32', 'bfloat16'] as DType[]) {
    for (const [batch, n, heads, dim, weighted] of [
      [2, 5, 3, 8, true],
      [1, 70, 2, 32, true],
      [2, 3, 4, 7, false],
      [1, 4, 2, 256, true],
    ] as const) {
      test(
        `[${batch}, ${n}, ${heads}, ${dim}]${weighted ? ' with weight' : ''} (${dtype}): equals permute · ` +
          `l2Normalize · weight, values and gradients`,
        () => {
          const gen = new Generator(batch + n + heads + dim);
          const xs = randomValues([batch, n, heads, dim], gen),
            ws = randomValues([heads, dim], gen, 0.5, 1),
            rs = randomValues([batch, heads, n, dim], gen);
          const run = (fn: typeof headNorm, as: DType) =>
            tidy(() => {
              const x = leaf(xs, [batch, n, heads, dim], as),
                w = weighted ? leaf(ws, [heads, dim], as) : null;
              const y = fn(x, w);
              A.sum(A.mul(y, Tensor.fromArray(rs, [batch, heads, n, dim], as))).backward();
              return [y.toArray(), x.grad!.toArray(), ...(w ? [w.grad!.toArray()] : [])].map((a) =>
                Float64Array.from(a),
              );
            });
          // bfloat16 against the float64 composition: the kernel computes in float64 and rounds once.
          const fused = run(headNorm, dtype),
            reference = run(headNormComposed, dtype === 'bfloat16' ? 'float64' : dtype);
          const tol = dtype === 'float64' ? 1e-12 : dtype === 'float32' ? 2e-6 : 1.5e-2;
          fused.forEach((got, i) => {
            const err = relativeError(got, reference[i]!);
            assert.ok(
              err < tol,
              `${['output', 'gradient of x', 'gradient of weight'][i]}: relative error ${err.toExponential(2)}`,
            );
          });
        },
      );
    }
  }

  test('head dims past the kernel limit take the composed form on every engine', () => {
    tidy(() => {
      const gen = new Generator(8);
      const x = Tensor.fromArray(randomValues([1, 2, 2, 300], gen), [1, 2, 2, 300], 'float64');
      assert.deepEqual(Array.from(headNorm(x).toArray()), Array.from(headNormComposed(x).toArray()));
    });
  });

  test('gradients match float64 finite differences without a weight', () => {
    gradcheck('headNorm', (x) => headNorm(x!), [{ shape: [2, 3, 2, 5] }], { seed: 21 });
  });

  test('the weight gradient (a sum over positions) has the same bits on 1, 2 and 5 threads', () => {
    const gen = new Generator(31);
    const shape = [3, 300, 2, 16];
    const xs = randomValues(shape, gen),
      ws = randomValues([2, 16], gen),
      rs = randomValues([3, 2, 300, 16], gen);
    const grads = onThreads([1, 2, 5], () =>
      tidy(() => {
        const x = leaf(xs, shape, 'float32'),
          w = leaf(ws, [2, 16], 'float32');
        A.sum(A.mul(headNorm(x, w), Tensor.fromArray(rs, [3, 2, 300, 16], 'float32'))).backward();
        return Array.from(w.grad!.toArray());
      }),
    );
    assert.deepEqual(grads[1], grads[0]);
    assert.deepEqual(grads[2], grads[0]);
  });
});

describe('linear with a bias: the matmul bias epilogue on the CPU engine', () => {
  for (const dtype of ['float64', 'float32', 'bfloat16'] as DType[]) {
    test(`x·Wᵀ + b equals the product plus the broadcast bias (${dtype}), values and gradients`, () => {
      const gen = new Generator(12);
      const [rows, inF, outF] = [9, 13, 11];
      const xs = randomValues([rows, inF], gen),
        ws = randomValues([outF, inF], gen),
        bs = randomValues([outF], gen),
        rs = randomValues([rows, outF], gen);
      const run = (withEpilogue: boolean) =>
        tidy(() => {
          const x = leaf(xs, [rows, inF], dtype),
            w = leaf(ws, [outF, inF], dtype),
            b = leaf(bs, [outF], dtype);
          const y = withEpilogue ? A.linear(x, w, b) : A.add(A.linear(x, w), b);
          A.sum(A.mul(y, Tensor.fromArray(rs, [rows, outF], dtype))).backward();
          return [y, x.grad!, w.grad!, b.grad!].map((t) => Float64Array.from(t.toArray()));
        });
      const fused = run(true),
        composed = run(false);
      // bfloat16: the epilogue rounds a·b + bias once, the composition twice.
      const tol = dtype === 'float64' ? 1e-14 : dtype === 'float32' ? 1e-6 : 1e-2;
      fused.forEach((got, i) => {
        const err = relativeError(got, composed[i]!);
        assert.ok(
          err < tol,
          `${['output', 'gradient of x', 'gradient of weight', 'gradient of bias'][i]}: relative ` +
            `error ${err.toExponential(2)}`,
        );
      });
    });
  }

  test('batched products with strided C: every batch item gets the bias; beta ≠ 0 is refused', () => {
    tidy(() => {
      const gen = new Generator(5);
      const [batch, m, n, k, ldc] = [3, 4, 5, 6, 7];
      const a = Tensor.fromArray(randomValues([batch, m, k], gen), [batch, m, k], 'float64');
      const b = Tensor.fromArray(randomValues([batch, k, n], gen), [batch, k, n], 'float64');
      const bias = Tensor.fromArray(randomValues([n], gen), [n], 'float64');
      const c = A.zeros([batch, m, ldc], 'float64');
      const args = {
        a: a.dense(),
        b: b.dense(),
        c: c.dense(),
        m,
        n,
        k,
        transA: false,
        transB: false,
        lda: k,
        ldb: n,
        ldc,
        strideA: m * k,
        strideB: k * n,
        strideC: m * ldc,
        batch,
        alpha: 0.5,
        beta: 0,
      };
      engine.matmulBias(args, bias.dense());
      const av = a.toArray(),
        bv = b.toArray(),
        biasv = bias.toArray(),
        cv = c.toArray();
      for (let q = 0; q < batch; q++)
        for (let i = 0; i < m; i++)
          for (let j = 0; j < ldc; j++) {
            let want = 0;
            if (j < n) {
              for (let p = 0; p < k; p++) want += av[(q * m + i) * k + p]! * bv[(q * k + p) * n + j]!;
              want = 0.5 * want + biasv[j]!;
            }
            assert.ok(Math.abs(cv[(q * m + i) * ldc + j]! - want) < 1e-12, `C[${q}, ${i}, ${j}]`);
          }
      assert.throws(() => engine.matmulBias({ ...args, beta: 1 }, bias.dense()), /a bias needs beta = 0/);
    });
  });
});

describe('adamwMany on the CPU engine', () => {
  const args = (step: number): AdamWArgs => adamwTestArgs(step, 0.7);
  const sizes = [1, 7, 16384, 40001];

  /** Fresh float32 states and gradients of `gradDtype` for the given sizes, from one seed. */
  function states(gradDtype: DType, shadowDtype: DType | null) {
    const gen = new Generator(17);
    return sizes.map((size) => ({
      param: Tensor.fromArray(randomValues([size], gen), [size], 'float32'),
      m: Tensor.fromArray(randomValues([size], gen, 0.01), [size], 'float32'),
      v: Tensor.fromArray(
        Float64Array.from({ length: size }, () => 1e-4 * (1 + gen.uniform())),
        [size],
        'float32',
      ),
      grad: Tensor.fromArray(randomValues([size], gen, 0.1), [size], gradDtype),
      shadow: shadowDtype ? A.zeros([size], shadowDtype) : null,
    }));
  }
  const itemOf = (s: ReturnType<typeof states>[number]): AdamWItem => ({
    param: s.param.dense(),
    m: s.m.dense(),
    v: s.v.dense(),
    grad: s.grad.dense(),
    count: s.param.size,
    shadow: s.shadow?.dense() ?? null,
  });
  const snapshot = (list: ReturnType<typeof states>) =>
    list.map((s) => [s.param, s.m, s.v, ...(s.shadow ? [s.shadow] : [])].map((t) => Array.from(t.toArray())));

  for (const [gradDtype, shadowDtype] of [
    ['float32', null],
    ['bfloat16', 'bfloat16'],
    ['float64', 'float16'],
    ['float16', 'bfloat16'],
  ] as [DType, DType | null][]) {
    test(
      `grad ${gradDtype}${shadowDtype ? `, ${shadowDtype} copy` : ''}: the same bits as adamw per tensor plus a ` +
        `rounding copy, on any thread count`,
      () => {
        tidy(() => {
          const reference = states(gradDtype, shadowDtype);
          for (let step = 1; step <= 2; step++) {
            for (const s of reference) {
              engine.adamw(s.param.dense(), s.grad.dense(), s.m.dense(), s.v.dense(), s.param.size, args(step));
              if (s.shadow) engine.copy(s.param.strided(), s.shadow.strided(), s.param.shape);
            }
          }
          const want = snapshot(reference);
          const got = onThreads([1, 3], () => {
            const many = states(gradDtype, shadowDtype);
            for (let step = 1; step <= 2; step++) engine.adamwMany(many.map(itemOf), args(step));
            return snapshot(many);
          });
          for (const g of got) assert.deepEqual(g, want);
        });
      },
    );
  }

  test('a weight copy that is not bfloat16 or float16 is refused, naming the item', () => {
    tidy(() => {
      const [s] = states('float32', 'float32');
      assert.throws(
        () => engine.adamwMany([itemOf(s!)], args(1)),
        /weight copy of item 0 is float32; it must be bfloat16 or float16/,
      );
    });
  });

  test('AdamW.setShadows refuses a float32 copy', () => {
    tidy(() => {
      const p = A.zeros([3], 'float32').requireGrad(true);
      const optimizer = new A.AdamW([p]);
      assert.throws(
        () => optimizer.setShadows(new Map([[p, A.zeros([3], 'float32')]])),
        /copy of \[3\] is float32; weight copies must be bfloat16 or float16/,
      );
    });
  });
});

describe('sumOfSquaresMany on the CPU engine', () => {
  test('equals the float64 sum over every buffer and dtype, with the same bits on 1, 2 and 4 threads', () => {
    tidy(() => {
      const gen = new Generator(23);
      const buffers = (
        [
          ['float32', 200_000],
          ['bfloat16', 70_001],
          ['float64', 3],
          ['float16', 65_536],
          ['float32', 0],
        ] as [DType, number][]
      ).map(([dtype, size]) => Tensor.fromArray(randomValues([size], gen, 0.5), [size], dtype));
      let want = 0;
      for (const b of buffers) for (const v of b.toArray()) want += v * v;
      const got = onThreads([1, 2, 4], () =>
        engine.sumOfSquaresMany(buffers.map((b) => ({ x: b.dense(), count: b.size }))),
      );
      assert.ok(Math.abs(got[0]! - want) <= 1e-12 * want, `Σx² ${got[0]} vs ${want}`);
      assert.equal(got[1], got[0]);
      assert.equal(got[2], got[0]);
      assert.equal(engine.sumOfSquaresMany([]), 0);
    });
  });

  test('an integer buffer is refused, naming it', () => {
    tidy(() => {
      const ids = Tensor.fromArray([1, 2], [2], 'int32');
      assert.throws(() => engine.sumOfSquaresMany([{ x: ids.dense(), count: 2 }]), /buffer 0 is not a float dtype/);
    });
  });
});

describe('embeddingUnchecked on the CPU engine', () => {
  test('gathers the rows of valid ids and zero rows for out-of-range ids, every dtype', () => {
    tidy(() => {
      for (const dtype of ['float32', 'float64', 'bfloat16', 'float16', 'int32'] as DType[]) {
        const [vocab, dim] = [5, 3];
        const table = Tensor.fromArray(
          Array.from({ length: vocab * dim }, (_, i) => i + 1),
          [vocab, dim],
          dtype,
        );
        const ids = Tensor.fromArray([4, 0, -1, 5, 2], [5], 'int32');
        const out = A.full([5, dim], 9, dtype);
        engine.embeddingUnchecked(table.dense(), ids.dense(), out.dense(), 5, dim, vocab);
        assert.deepEqual(Array.from(out.toArray()), [13, 14, 15, 1, 2, 3, 0, 0, 0, 0, 0, 0, 7, 8, 9], dtype);
      }
    });
  });
});

describe('column sums of the older fused ops do not depend on the thread count', () => {
  test(
    'addNorm weight / bias / residual-scale gradients and the biasGelu bias gradient: same bits on 1, 2 and 5 ' +
      'threads',
    () => {
      const gen = new Generator(41);
      const [rows, cols] = [600, 512];
      const values = [[rows, cols], [rows, cols], [cols], [cols], [cols], [rows, cols]].map((s) =>
        randomValues(s, gen),
      );
      for (const dtype of ['float32', 'float64'] as DType[]) {
        const runs = onThreads([1, 2, 5], () =>
          tidy(() => {
            const [a, b, scale, weight, bias] = values
              .slice(0, 5)
              .map((v, i) => leaf(v, i < 2 ? [rows, cols] : [cols], dtype));
            const r = Tensor.fromArray(values[5]!, [rows, cols], dtype);
            const y = addNorm(a!, b!, { weight: weight!, bias: bias!, residualScale: scale!, residualConstant: 1.5 });
            A.add(A.sum(A.mul(y, r)), A.sum(A.mul(biasGelu(a!, bias!), r))).backward();
            return [scale!, weight!, bias!].map((t) => Array.from(t.grad!.toArray()));
          }),
        );
        assert.deepEqual(runs[1], runs[0], `${dtype}: 2 threads`);
        assert.deepEqual(runs[2], runs[0], `${dtype}: 5 threads`);
      }
    },
  );
});
