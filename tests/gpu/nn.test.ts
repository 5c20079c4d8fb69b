// CUDA engine vs CPU engine: softmax, layer/RMS norm, cross-entropy, embedding, dropout, random fills, AdamW.
import assert from 'node:assert/strict';
import { bf16BitsToFloat, floatToBf16Bits, type DType } from '../../src/tensor/dtype.js';
import type { CudaEngine } from '../../src/engine/cuda.js';
import { FLOAT_DTYPES, Twins, assertClose, cpu, gpu, gpuTest, read, relativeError } from './harness.js';
import { adamwTestArgs } from '../helpers/adamw-args.js';

const statDtype = (dtype: DType): DType => (dtype === 'float64' ? 'float64' : 'float32');

gpuTest('softmax and log-softmax, forward and backward', () => {
  const t = new Twins(21);
  try {
    for (const dtype of [...FLOAT_DTYPES, 'float64'] as DType[]) {
      for (const [rows, cols] of [
        [7, 5],
        [64, 1000],
        [3, 50000],
        [1000, 33],
      ]) {
        const n = rows * cols;
        const values = new Float64Array(n);
        for (let i = 0; i < n; i++) values[i] = 3 * t.gen.normal();
        for (let j = 0; j < cols; j += 3) values[j] = -Infinity; // a partly masked first row
        const x = t.from(dtype, values);
        const gy = t.random(dtype, n);
        for (const log of [false, true]) {
          const y = t.output(dtype, n),
            gx = t.output(dtype, n);
          cpu().softmax(x.cpu, y.cpu, rows, cols, log);
          gpu().softmax(x.gpu, y.gpu, rows, cols, log);
          if (dtype === 'float32') {
            // The CPU sums long float32 rows sequentially (error grows with cols); judge both against float64.
            const x64 = t.from('float64', read(x).cpu),
              y64 = t.output('float64', n);
            cpu().softmax(x64.cpu, y64.cpu, rows, cols, log);
            const ref = read(y64).cpu,
              got = read(y);
            const gpuError = relativeError(ref, got.gpu),
              cpuError = relativeError(ref, got.cpu);
            assert.ok(
              gpuError <= Math.max(1e-5, 2 * cpuError),
              `${log ? 'log-' : ''}softmax [${rows}, ${cols}] float32: GPU ` +
                `error ${gpuError.toExponential(2)} vs float64 (CPU float32: ${cpuError.toExponential(2)})`,
            );
          } else {
            assertClose(`${log ? 'log-' : ''}softmax [${rows}, ${cols}]`, y);
          }
          // Both backward passes read the CPU forward output so only the backward kernel is compared.
          const yRef = t.from(dtype, read(y).cpu);
          cpu().softmaxGrad(yRef.cpu, gy.cpu, gx.cpu, rows, cols, log);
          gpu().softmaxGrad(yRef.gpu, gy.gpu, gx.gpu, rows, cols, log);
          assertClose(`${log ? 'log-' : ''}softmax grad [${rows}, ${cols}]`, gx);
        }
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('layer norm and RMS norm, with and without affine parameters, forward and backward', () => {
  const t = new Twins(22);
  try {
    for (const dtype of [...FLOAT_DTYPES, 'float64'] as DType[]) {
      for (const [rows, cols] of [
        [8, 64],
        [300, 1000],
        [4, 4096],
        [1025, 3],
      ]) {
        const n = rows * cols;
        const x = t.random(dtype, n, 2, 0.5);
        const w = t.random(dtype, cols, 0.5, 1);
        const b = t.random(dtype, cols, 0.5);
        const gy = t.random(dtype, n);
        for (const rms of [false, true]) {
          for (const affine of [false, true]) {
            const y = t.output(dtype, n),
              stats = t.output(statDtype(dtype), 2 * rows);
            const bias = affine && !rms ? b : null;
            cpu().norm(rms, x.cpu, affine ? w.cpu : null, bias?.cpu ?? null, y.cpu, stats.cpu, rows, cols, 1e-5);
            gpu().norm(rms, x.gpu, affine ? w.gpu : null, bias?.gpu ?? null, y.gpu, stats.gpu, rows, cols, 1e-5);
            const label = `${rms ? 'rms' : 'layer'} norm${affine ? ' (affine)' : ''} [${rows}, ${cols}]`;
            assertClose(label, y);
            assertClose(`${label} stats`, stats, dtype === 'float64' ? 1e-12 : 1e-5);
            const gx = t.output(dtype, n),
              gw = t.output(dtype, cols),
              gb = t.output(dtype, cols);
            // Backward from the CPU's statistics on both engines.
            const s = t.from(statDtype(dtype), read(stats).cpu);
            cpu().normGrad(
              rms,
              x.cpu,
              affine ? w.cpu : null,
              s.cpu,
              gy.cpu,
              gx.cpu,
              affine ? gw.cpu : null,
              bias ? gb.cpu : null,
              rows,
              cols,
            );
            gpu().normGrad(
              rms,
              x.gpu,
              affine ? w.gpu : null,
              s.gpu,
              gy.gpu,
              gx.gpu,
              affine ? gw.gpu : null,
              bias ? gb.gpu : null,
              rows,
              cols,
            );
            // rows of 3 columns cancel heavily in bf16 (x̂ sums to ~0): compare them in float32/float64 only.
            if (dtype !== 'bfloat16' || cols > 3) assertClose(`${label} gradIn`, gx);
            if (affine) assertClose(`${label} gradWeight`, gw, dtype === 'float32' ? 1e-5 : undefined);
            if (bias) assertClose(`${label} gradBias`, gb, dtype === 'float32' ? 1e-5 : undefined);
          }
        }
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('cross-entropy over large vocabularies with ignored rows, forward and backward', () => {
  const t = new Twins(23);
  try {
    for (const dtype of [...FLOAT_DTYPES, 'float64'] as DType[]) {
      for (const [rows, vocab] of [
        [16, 50],
        [100, 5000],
        [5, 50257],
      ]) {
        const logits = t.random(dtype, rows * vocab, 3);
        const ids = new Int32Array(rows);
        for (let r = 0; r < rows; r++) ids[r] = r % 4 === 1 ? -100 : Math.floor(t.gen.uniform() * vocab);
        const targets = t.from('int32', ids);
        const sd = statDtype(dtype);
        const losses = t.output(sd, rows),
          lse = t.output(sd, rows);
        cpu().crossEntropy(logits.cpu, targets.cpu, losses.cpu, lse.cpu, rows, vocab, -100);
        gpu().crossEntropy(logits.gpu, targets.gpu, losses.gpu, lse.gpu, rows, vocab, -100);
        assertClose(`crossEntropy losses [${rows}, ${vocab}]`, losses, dtype === 'float64' ? 1e-12 : 1e-5);
        assertClose(`crossEntropy lse [${rows}, ${vocab}]`, lse, dtype === 'float64' ? 1e-12 : 1e-5);
        const gLoss = t.random(sd, rows);
        const gLogits = t.output(dtype, rows * vocab);
        cpu().crossEntropyGrad(logits.cpu, targets.cpu, lse.cpu, gLoss.cpu, gLogits.cpu, rows, vocab, -100);
        gpu().crossEntropyGrad(logits.gpu, targets.gpu, lse.gpu, gLoss.gpu, gLogits.gpu, rows, vocab, -100);
        assertClose(`crossEntropyGrad [${rows}, ${vocab}]`, gLogits);
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('embedding: gather, out-of-range ids reported, deterministic gradient with repeated ids', () => {
  const t = new Twins(24);
  try {
    for (const dtype of [...FLOAT_DTYPES, 'float64'] as DType[]) {
      for (const [count, dim, vocab] of [
        [10, 8, 5],
        [4096, 256, 1000],
        [3000, 1024, 8192],
        // Runs of hundreds of equal ids (byte-level text's frequent bytes): loaded several rows at a time.
        [2051, 300, 3],
      ]) {
        const table = t.random(dtype, vocab * dim);
        const ids = t.ints(count, 0, vocab);
        const out = t.output(dtype, count * dim);
        assert.equal(cpu().embedding(table.cpu, ids.cpu, out.cpu, count, dim, vocab), -1);
        assert.equal(gpu().embedding(table.gpu, ids.gpu, out.gpu, count, dim, vocab), -1);
        assertClose(`embedding [${count}, ${dim}] of ${vocab}`, out, 0);
        const gy = t.random(dtype, count * dim);
        const gTable = t.from(dtype, new Float64Array(vocab * dim));
        cpu().embeddingGrad(ids.cpu, gy.cpu, gTable.cpu, count, dim);
        gpu().embeddingGrad(ids.gpu, gy.gpu, gTable.gpu, count, dim);
        assertClose(`embeddingGrad [${count}, ${dim}] of ${vocab}`, gTable, dtype === 'float32' ? 1e-6 : undefined);
        // Same inputs, same bits: the gradient does not depend on scheduling.
        const again = t.from(dtype, new Float64Array(vocab * dim));
        gpu().embeddingGrad(ids.gpu, gy.gpu, again.gpu, count, dim);
        assert.deepEqual(read(again).gpu, read(gTable).gpu, 'embeddingGrad is deterministic');
      }
    }
    const bad = t.from('int32', [1, 2, 7, 3, -1]);
    const table = t.random('float32', 5 * 4),
      out = t.output('float32', 5 * 4);
    assert.equal(gpu().embedding(table.gpu, bad.gpu, out.gpu, 5, 4, 5), 2);
    assert.equal(cpu().embedding(table.cpu, bad.cpu, out.cpu, 5, 4, 5), 2);
  } finally {
    t.dispose();
  }
});

gpuTest('dropout: the same seed drops the same elements on both engines', () => {
  const t = new Twins(25);
  try {
    for (const dtype of [...FLOAT_DTYPES, 'float64'] as DType[]) {
      for (const p of [0.1, 0.5]) {
        const n = 100003;
        const x = t.random(dtype, n, 1, 3); // never zero, so zeros mark dropped elements
        const out = t.output(dtype, n);
        cpu().dropout(x.cpu, out.cpu, n, p, 1234567);
        gpu().dropout(x.gpu, out.gpu, n, p, 1234567);
        const { cpu: c, gpu: g } = read(out);
        let dropped = 0;
        for (let i = 0; i < n; i++) {
          assert.equal(c[i] === 0, g[i] === 0, `dropout ${dtype} p=${p}: element ${i} kept on one engine only`);
          if (c[i] === 0) dropped++;
        }
        assert.ok(Math.abs(dropped / n - p) < 0.01, `dropout ${dtype}: dropped fraction ${dropped / n} for p=${p}`);
        assertClose(`dropout ${dtype} p=${p}`, out);
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('random fills: the same seed gives the same normal and uniform values on both engines', () => {
  const t = new Twins(27);
  try {
    for (const dtype of [...FLOAT_DTYPES, 'float64'] as DType[]) {
      const n = 100001;
      for (const [distribution, a, b] of [
        ['normal', 0.5, 0.02],
        ['uniform', -0.3, 0.3],
      ] as const) {
        const out = t.output(dtype, n);
        cpu().randomFill(out.cpu, n, distribution, a, b, 2 ** 52 + 12345);
        gpu().randomFill(out.gpu, n, distribution, a, b, 2 ** 52 + 12345);
        // float64 transcendental functions differ by an ulp or so between the CPU and the GPU.
        assertClose(
          `random ${distribution} ${dtype}`,
          out,
          dtype === 'float64' ? 1e-14 : dtype === 'float32' ? 1e-7 : 1e-3,
        );
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('adamw: float32 master weights and state with float32 and bfloat16 gradients', () => {
  const t = new Twins(26);
  try {
    for (const gradDtype of [...FLOAT_DTYPES, 'float64'] as DType[]) {
      const n = 200001;
      const param = t.random('float32', n),
        m = t.random('float32', n, 0.01),
        v = t.from(
          'float32',
          Array.from({ length: n }, () => 1e-4 * t.gen.uniform()),
        );
      const grad = t.random(gradDtype, n, 0.1);
      for (let step = 1; step <= 3; step++) {
        const args = adamwTestArgs(step, 0.5);
        cpu().adamw(param.cpu, grad.cpu, m.cpu, v.cpu, n, args);
        gpu().adamw(param.gpu, grad.gpu, m.gpu, v.gpu, n, args);
      }
      assertClose(`adamw params (grad ${gradDtype})`, param, 1e-6);
      assertClose(`adamw m (grad ${gradDtype})`, m, 1e-6);
      assertClose(`adamw v (grad ${gradDtype})`, v, 1e-6);
    }
  } finally {
    t.dispose();
  }
});

gpuTest('sumOfSquaresMany equals the sum of sumOfSquares; adamwMany writes the rounded weights into the copy', () => {
  const t = new Twins(27);
  const g = gpu() as CudaEngine;
  try {
    const xs = [
      t.random('float32', 1000),
      t.random('bfloat16', 70001),
      t.random('float32', 1),
      t.random('bfloat16', 3_000_000),
    ];
    const one = xs.reduce((s, x) => s + g.sumOfSquares(x.gpu, x.count), 0);
    const many = g.sumOfSquaresMany(xs.map((x) => ({ x: x.gpu, count: x.count })));
    assert.ok(Math.abs(one - many) <= 1e-12 * one, `sumOfSquaresMany ${many} vs ${one}`);
    const n = 100003;
    const param = t.random('float32', n),
      m = t.random('float32', n, 0.01),
      v = t.from('float32', new Float64Array(n).fill(1e-4));
    const grad = t.random('bfloat16', n, 0.1),
      shadow = t.output('bfloat16', n);
    const args = {
      lr: 1e-3,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      biasCorrection1: 0.1,
      biasCorrection2: 0.05,
      gradScale: 1,
    };
    cpu().adamw(param.cpu, grad.cpu, m.cpu, v.cpu, n, args);
    g.adamwMany([{ param: param.gpu, grad: grad.gpu, m: m.gpu, v: v.gpu, count: n, shadow: shadow.gpu }], args);
    assertClose('adamwMany params', param, 1e-6);
    const masters = read(param).gpu,
      weights = read(shadow).gpu;
    for (let i = 0; i < n; i++)
      assert.equal(weights[i], bf16BitsToFloat(floatToBf16Bits(masters[i]!)), `shadow weight ${i}`);
  } finally {
    t.dispose();
  }
});
