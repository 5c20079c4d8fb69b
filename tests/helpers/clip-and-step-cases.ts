// The cases of clipAndStep (src/optim/clip.ts) on one engine, for tests/optim/clip-and-step.test.ts (CPU) and
// tests/gpu/clip-and-step.test.ts (CUDA): global-norm clipping read by the fused AdamW steps on the engine
// (native/fused/adamw/clip.h) gives the bits of clipping on the host — clipGradNorm, then step({ gradScale }) on
// the same engine — for float32 and 8-bit AdamW, with the norm above and below the bound; a gradient norm that is
// not finite skips the update (weights, state and step count as they were) and the next step continues as the
// host path's; an optimizer without device clipping takes the host path; bad clipping arguments are refused
// before any work.
import assert from 'node:assert/strict';
import * as A from '../../src/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Generator } from '../../src/tensor/random.js';
import { AdamW } from '../../src/optim/adamw.js';
import { AdamW8bit } from '../../src/optim/adamw8bit.js';
import { SGD } from '../../src/optim/sgd.js';
import { clipAndStep, clipGradNorm } from '../../src/optim/clip.js';
import type { Optimizer } from '../../src/optim/optimizer.js';
import { randomValues } from './gradcheck.js';

const SHAPES = [[300], [17, 40], [1000]];

/** Two identical parameter sets (with bf16 copies for the fused steps to write). */
function twins(device: string, seed: number): { a: Tensor[]; b: Tensor[] } {
  const gen = new Generator(seed);
  const values = SHAPES.map((shape) => randomValues(shape, gen));
  const make = () =>
    SHAPES.map((shape, i) => {
      const t = Tensor.fromArray(values[i]!, shape, 'float32', device);
      t.requiresGrad = true;
      return t.keep();
    });
  return { a: make(), b: make() };
}

/**
 * Gives both sets the same gradients (bf16 unless `dtype` says otherwise), scaled to a global norm of about `norm`
 * (NaN, ±Infinity: one such element).
 */
function setGradients(device: string, sets: Tensor[][], gen: Generator, norm: number, dtype: DType = 'bfloat16'): void {
  const grads = SHAPES.map((shape) => randomValues(shape, gen));
  const total = Math.sqrt(grads.reduce((s, g) => s + g.reduce((t, x) => t + x * x, 0), 0));
  const factor = Number.isFinite(norm) ? norm / total : 1;
  const scaled = grads.map((g) => g.map((x) => x * factor));
  if (!Number.isFinite(norm)) scaled[1]![5] = norm;
  for (const set of sets) {
    set.forEach((p, i) => {
      p.grad?.dispose();
      p.grad = Tensor.fromArray(scaled[i]!, SHAPES[i]!, dtype, device).keep();
    });
  }
}

const bitsOf = (t: Tensor): Uint8Array => {
  const a = t.toArray() as Float32Array;
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
};

/** Weights and every optimizer slot, as bytes. */
function snapshot(params: Tensor[], opt: Optimizer<object>): Uint8Array[] {
  const state = opt.stateDict();
  const slots = state.slots.flatMap((s) =>
    Object.values(s).map((x) => new Uint8Array(Float64Array.from(x as ArrayLike<number>).buffer)),
  );
  return [...params.map(bitsOf), ...slots];
}

type Make = (params: Tensor[]) => Optimizer<object>;
const OPTIMIZERS: [string, Make][] = [
  ['AdamW', (p) => new AdamW(p, { lr: 1e-2, weightDecay: 0.1 }) as unknown as Optimizer<object>],
  ['AdamW8bit', (p) => new AdamW8bit(p, { lr: 1e-2, weightDecay: 0.1 }) as unknown as Optimizer<object>],
];

/** Registers the cases for `device` through `register` (node:test's test, or the GPU harness's gpuTest). */
export function clipAndStepCases(device: string, register: (name: string, fn: () => void) => void): void {
  const test = (name: string, fn: () => void) => register(`clipAndStep on ${device}: ${name}`, fn);
  for (const [name, make] of OPTIMIZERS) {
    test(`${name}: the bits of clipGradNorm + step({ gradScale }), norms above and below the bound`, () => {
      const { a, b } = twins(device, 1);
      const onDevice = make(a);
      const host = make(b);
      assert.ok(onDevice.clipsOnDevice, `${name} clips on the device`);
      const gen = new Generator(2);
      try {
        for (const norm of [7.5, 0.3, 2.25, 1.0000001]) {
          setGradients(device, [a, b], gen, norm);
          const got = clipAndStep(onDevice, a, 1);
          const want = clipGradNorm(b, 1);
          host.step({ gradScale: want.scale });
          assert.equal(got.norm, want.norm, `${name}: the norm read back`);
          assert.equal(got.scale, want.scale, `${name}: the scale`);
          assert.ok(got.stepped);
          assert.ok(Math.abs(got.norm - norm) < 1e-2 * norm, `${name}: norm ${got.norm} vs ${norm}`);
          assert.deepEqual(snapshot(a, onDevice), snapshot(b, host), `${name}, norm ${norm}: weights and state`);
          assert.equal(onDevice.stepCount, host.stepCount);
        }
      } finally {
        onDevice.dispose();
        host.dispose();
        [...a, ...b].forEach((t) => t.dispose());
      }
    });

    for (const bad of [NaN, Infinity]) {
      test(`${name}: a gradient norm of ${bad} skips the update; the next step is the host path's`, () => {
        const { a, b } = twins(device, 3);
        const onDevice = make(a);
        const host = make(b);
        const gen = new Generator(4);
        try {
          setGradients(device, [a, b], gen, 3); // one ordinary step first, so there is state to keep
          clipAndStep(onDevice, a, 1);
          host.step({ gradScale: clipGradNorm(b, 1).scale });
          const before = snapshot(a, onDevice);
          setGradients(device, [a, b], gen, bad);
          const skipped = clipAndStep(onDevice, a, 1);
          assert.equal(skipped.stepped, false);
          assert.ok(!Number.isFinite(skipped.norm), `the norm read back is ${skipped.norm}`);
          assert.deepEqual(snapshot(a, onDevice), before, 'weights and state unchanged');
          assert.equal(onDevice.stepCount, 1, 'the skipped step is not counted');
          setGradients(device, [a, b], gen, 5);
          clipAndStep(onDevice, a, 1);
          host.step({ gradScale: clipGradNorm(b, 1).scale });
          assert.deepEqual(snapshot(a, onDevice), snapshot(b, host), 'the step after the skipped one');
        } finally {
          onDevice.dispose();
          host.dispose();
          [...a, ...b].forEach((t) => t.dispose());
        }
      });
    }
  }

  test('an optimizer without device clipping (SGD) takes the host path', () => {
    const { a, b } = twins(device, 5);
    const onDevice = new SGD(a, { lr: 0.1 });
    const host = new SGD(b, { lr: 0.1 });
    try {
      assert.equal(onDevice.clipsOnDevice, false);
      setGradients(device, [a, b], new Generator(6), 4, 'float32');
      const got = clipAndStep(onDevice as unknown as Optimizer<object>, a, 1);
      host.step({ gradScale: clipGradNorm(b, 1).scale });
      assert.deepEqual(a.map(bitsOf), b.map(bitsOf));
      assert.ok(Math.abs(got.scale - 0.25) < 1e-6);
      assert.throws(
        () => onDevice.step({ clip: { sumOfSquares: A.zeros([1], 'float64', device), maxNorm: 1 } }),
        /no clipping on the device/,
      );
    } finally {
      onDevice.dispose();
      host.dispose();
      [...a, ...b].forEach((t) => t.dispose());
    }
  });

  test('bad clipping arguments are refused before any work', () => {
    const { a } = twins(device, 7);
    const opt = new AdamW(a);
    try {
      setGradients(device, [a], new Generator(8), 2);
      const weights = a.map(bitsOf);
      for (const maxNorm of [0, -1, NaN]) {
        assert.throws(() => clipAndStep(opt as unknown as Optimizer<object>, a, maxNorm), /must be positive/);
        const sum = A.zeros([1], 'float64', device);
        assert.throws(() => opt.step({ clip: { sumOfSquares: sum, maxNorm } }), /must be positive/);
        sum.dispose();
      }
      const wrong = A.zeros([1], 'float32', device);
      assert.throws(() => opt.step({ clip: { sumOfSquares: wrong, maxNorm: 1 } }), /must be float64/);
      wrong.dispose();
      assert.deepEqual(a.map(bitsOf), weights, 'no update was taken');
    } finally {
      opt.dispose();
      a.forEach((t) => t.dispose());
    }
  });
}
