// Every differentiable op's gradient against central finite differences in float64.
import { describe, test } from 'node:test';
import * as A from '../../src/index.js';
import { gradcheck } from '../helpers/gradcheck.js';

const { tensor } = A;

describe('elementwise gradients with broadcasting', () => {
  const shapes: [number[], number[]][] = [
    [
      [3, 4],
      [3, 4],
    ],
    [[3, 4], [4]],
    [
      [3, 1],
      [1, 4],
    ],
    [
      [2, 3, 4],
      [3, 1],
    ],
    [[1], [2, 3]],
    [[], [2, 2]],
    [
      [2, 1, 3],
      [2, 5, 1],
    ],
  ];
  for (const [sa, sb] of shapes) {
    test(`add/sub/mul/div ${JSON.stringify(sa)} with ${JSON.stringify(sb)}`, () => {
      gradcheck('add', (a, b) => A.add(a!, b!), [{ shape: sa }, { shape: sb }]);
      gradcheck('sub', (a, b) => A.sub(a!, b!), [{ shape: sa }, { shape: sb }]);
      gradcheck('mul', (a, b) => A.mul(a!, b!), [{ shape: sa }, { shape: sb }]);
      gradcheck('div', (a, b) => A.div(a!, A.add(A.square(b!), 0.5)), [{ shape: sa }, { shape: sb }]);
      gradcheck('maximum', (a, b) => A.maximum(a!, b!), [{ shape: sa }, { shape: sb }]);
      gradcheck('minimum', (a, b) => A.minimum(a!, b!), [{ shape: sa }, { shape: sb }]);
    });
  }
  test('scalar operands', () => {
    gradcheck('add scalar', (a) => A.add(a!, 2.5), [{ shape: [3, 2] }]);
    gradcheck('mul scalar', (a) => A.mul(a!, -1.5), [{ shape: [3, 2] }]);
    gradcheck('sub scalar', (a) => A.sub(a!, 0.25), [{ shape: [4] }]);
    gradcheck('div scalar', (a) => A.div(a!, 3), [{ shape: [2, 2] }]);
  });
});

describe('unary gradients', () => {
  const shapes = [[5], [2, 3], [2, 1, 4]];
  for (const shape of shapes) {
    test(`unary maps on ${JSON.stringify(shape)}`, () => {
      for (const [name, f] of [
        ['neg', A.neg],
        ['exp', A.exp],
        ['gelu', A.gelu],
        ['sigmoid', A.sigmoid],
        ['silu', A.silu],
        ['tanh', A.tanh],
        ['square', A.square],
        ['sin', A.sin],
        ['cos', A.cos],
      ] as const) {
        gradcheck(name, (x) => f(x!), [{ shape }]);
      }
      // Positive-domain maps.
      gradcheck('log', (x) => A.log(x!), [{ shape }], { scale: 0.2, offset: 2 });
      gradcheck('sqrt', (x) => A.sqrt(x!), [{ shape }], { scale: 0.2, offset: 2 });
      gradcheck('rsqrt', (x) => A.rsqrt(x!), [{ shape }], { scale: 0.2, offset: 2 });
      gradcheck('pow', (x) => A.pow(x!, 3), [{ shape }]);
      gradcheck('pow fractional', (x) => A.pow(x!, 1.5), [{ shape }], { scale: 0.2, offset: 2 });
    });
  }
});

describe('reduction gradients', () => {
  test('sum/mean/max/min over axes, keepDims, size-1 axes', () => {
    const cases: [number[], number | number[] | undefined][] = [
      [[3, 4], undefined],
      [[3, 4], 0],
      [[3, 4], 1],
      [
        [2, 3, 4],
        [0, 2],
      ],
      [[2, 1, 4], 1],
      [[2, 3, 4], -1],
      [[5], 0],
    ];
    for (const [shape, axes] of cases) {
      for (const keep of [false, true]) {
        gradcheck('sum', (x) => A.sum(x!, axes, keep), [{ shape }]);
        gradcheck('mean', (x) => A.mean(x!, axes, keep), [{ shape }]);
        gradcheck('max', (x) => A.max(x!, axes, keep), [{ shape }]);
        gradcheck('min', (x) => A.min(x!, axes, keep), [{ shape }]);
      }
    }
  });
});

describe('matmul gradients', () => {
  test('2-d, batched, broadcast batch, vectors', () => {
    gradcheck('matmul 2d', (a, b) => A.matmul(a!, b!), [{ shape: [3, 4] }, { shape: [4, 5] }]);
    gradcheck('matmul batched', (a, b) => A.matmul(a!, b!), [{ shape: [2, 3, 4] }, { shape: [2, 4, 2] }]);
    gradcheck('matmul broadcast', (a, b) => A.matmul(a!, b!), [{ shape: [2, 3, 3, 4] }, { shape: [4, 2] }]);
    gradcheck('matmul broadcast size-1 batch', (a, b) => A.matmul(a!, b!), [
      { shape: [2, 1, 3, 4] },
      { shape: [1, 3, 4, 2] },
    ]);
    gradcheck('vector·matrix', (a, b) => A.matmul(a!, b!), [{ shape: [4] }, { shape: [4, 3] }]);
    gradcheck('matrix·vector', (a, b) => A.matmul(a!, b!), [{ shape: [3, 4] }, { shape: [4] }]);
    gradcheck('size-1 dims', (a, b) => A.matmul(a!, b!), [{ shape: [1, 4] }, { shape: [4, 1] }]);
  });
  test('transposed and sliced views', () => {
    gradcheck('aᵀ·b', (a, b) => A.matmul(A.transpose(a!), b!), [{ shape: [4, 3] }, { shape: [4, 5] }]);
    gradcheck('a·bᵀ batched', (a, b) => A.matmul(a!, A.transpose(b!)), [{ shape: [2, 3, 4] }, { shape: [2, 5, 4] }]);
    gradcheck('permuted batch', (a, b) => A.matmul(A.permute(a!, [1, 0, 2]), b!), [
      { shape: [3, 2, 4] },
      { shape: [2, 4, 3] },
    ]);
    gradcheck('narrowed', (a, b) => A.matmul(A.narrow(a!, 1, 1, 3), b!), [{ shape: [3, 5] }, { shape: [3, 2] }]);
  });
  test('linear with and without bias', () => {
    gradcheck('linear', (x, w, b) => A.linear(x!, w!, b!), [{ shape: [2, 3, 4] }, { shape: [5, 4] }, { shape: [5] }]);
    gradcheck('linear no bias', (x, w) => A.linear(x!, w!), [{ shape: [3, 4] }, { shape: [2, 4] }]);
    gradcheck('linear on a transposed input', (x, w) => A.linear(A.transpose(x!), w!), [
      { shape: [4, 3] },
      { shape: [2, 4] },
    ]);
  });
  test('one input feeding several linears: later products add into its gradient (beta = 1)', () => {
    // h is an intermediate, so the second and third linear accumulate into the gradient the first created.
    gradcheck(
      'q, k, v projections of one input',
      (x, wq, wk, wv) => {
        const h = A.mul(x!, 1.5);
        return A.concat([A.linear(h, wq!), A.linear(h, wk!), A.linear(h, wv!)], -1);
      },
      [{ shape: [2, 3, 4] }, { shape: [5, 4] }, { shape: [2, 4] }, { shape: [2, 4] }],
    );
  });
});

describe('layout gradients', () => {
  test('reshape, permute, transpose, narrow, expand, contiguous', () => {
    gradcheck('reshape', (x) => A.reshape(x!, [4, -1]), [{ shape: [2, 3, 2] }]);
    gradcheck('reshape of transposed', (x) => A.reshape(A.transpose(x!), [-1]), [{ shape: [3, 4] }]);
    gradcheck('permute', (x) => A.permute(x!, [2, 0, 1]), [{ shape: [2, 3, 4] }]);
    gradcheck('narrow', (x) => A.narrow(x!, -1, 1, 2), [{ shape: [3, 4] }]);
    gradcheck('expand', (x) => A.expand(x!, [2, 3, 4]), [{ shape: [3, 1] }]);
    gradcheck('contiguous', (x) => A.contiguous(A.transpose(x!)), [{ shape: [3, 4] }]);
    gradcheck('unsqueeze/squeeze', (x) => A.squeeze(A.unsqueeze(x!, 1), 1), [{ shape: [3, 4] }]);
  });
  test('concat, split, pad, shift', () => {
    gradcheck('concat', (a, b) => A.concat([a!, b!], 1), [{ shape: [2, 3] }, { shape: [2, 2] }]);
    gradcheck('concat axis 0', (a, b, c) => A.concat([a!, b!, c!], 0), [
      { shape: [1, 3] },
      { shape: [2, 3] },
      { shape: [1, 3] },
    ]);
    gradcheck(
      'split',
      (x) => {
        const [a, b] = A.split(x!, [1, 3], 1);
        return A.mul(A.sum(a!, 1, true), b!);
      },
      [{ shape: [2, 4] }],
    );
    gradcheck('pad', (x) => A.pad(x!, 0, 1, 2, 0.5), [{ shape: [2, 3] }]);
    gradcheck('shift forward', (x) => A.shift(x!, 1, 1), [{ shape: [2, 4, 3] }]);
    gradcheck('shift backward', (x) => A.shift(x!, 0, -2), [{ shape: [5, 2] }]);
  });
});

describe('neural-network op gradients', () => {
  test('softmax and log-softmax', () => {
    for (const shape of [[5], [3, 4], [2, 3, 7], [4, 1]]) {
      gradcheck('softmax', (x) => A.softmax(x!), [{ shape }]);
      gradcheck('logSoftmax', (x) => A.logSoftmax(x!), [{ shape }]);
    }
  });
  test('layer norm, RMS norm, L2 normalisation', () => {
    for (const shape of [
      [3, 8],
      [2, 3, 5],
      [1, 4],
    ]) {
      const d = shape[shape.length - 1]!;
      gradcheck('layerNorm', (x, w, b) => A.layerNorm(x!, w!, b!), [{ shape }, { shape: [d] }, { shape: [d] }]);
      gradcheck('layerNorm without affine', (x) => A.layerNorm(x!, null, null), [{ shape }]);
      gradcheck('rmsNorm', (x, w) => A.rmsNorm(x!, w!), [{ shape }, { shape: [d] }]);
      gradcheck('l2Normalize', (x) => A.l2Normalize(x!), [{ shape }]);
    }
  });
  test('embedding (scatter-add backward, repeated ids)', () => {
    const ids = tensor([1, 3, 1, 0, 3, 3], [2, 3], { dtype: 'int32' });
    gradcheck('embedding', (w) => A.embedding(w!, ids), [{ shape: [5, 4] }]);
    ids.dispose();
  });
  test('cross-entropy with ignore index and reductions', () => {
    const targets = tensor([2, -100, 0, 4, 1, 4], [2, 3], { dtype: 'int32' });
    gradcheck('crossEntropy mean', (x) => A.crossEntropy(x!, targets), [{ shape: [2, 3, 5] }]);
    gradcheck('crossEntropy sum', (x) => A.crossEntropy(x!, targets, { reduction: 'sum' }), [{ shape: [2, 3, 5] }]);
    gradcheck('crossEntropy none', (x) => A.crossEntropy(x!, targets, { reduction: 'none' }), [{ shape: [2, 3, 5] }]);
    targets.dispose();
  });
  test('dropout (the seeded mask is the same in forward and backward)', () => {
    gradcheck('dropout', (x) => A.dropout(x!, 0.3, 1234), [{ shape: [4, 6] }]);
  });
});
