// The few-row products are dependent launches (native/cuda/dependent_launch.cuh, gemv.cu): their CTAs start while
// the kernel before them runs — the add-norm and the products themselves let them in early — and prefetch their
// weights into L2 before they wait for it. Chains where each product reads what the kernel just before it wrote, as
// its input and as its weight (the case a read issued before the wait would get wrong), eagerly and replayed as a
// graph, against the same chain on the CPU engine.
import assert from 'node:assert/strict';
import { Tensor, tidy } from '../../src/index.js';
import { Generator } from '../../src/tensor/random.js';
import { linear } from '../../src/ops/matmul.js';
import { addNorm } from '../../src/ops/fused/add-norm.js';
import type { CudaEngine } from '../../src/engine/cuda.js';
import { gpu, gpuTest } from './harness.js';

const rows = 256,
  dim = 512;

/** x [2, dim] → add-norm with h → products whose inputs and weights the kernel before each wrote. */
function chain(x: Tensor, h: Tensor, table: Tensor, weight: Tensor): Tensor {
  return tidy(() => {
    let y = x;
    for (let round = 0; round < 3; round++) {
      const normed = addNorm(table, table, { rms: true });
      // The weight of this product is the add-norm's output: [rows, dim].
      const z = linear(y, normed);
      // The next product's input is z through a second product (its input written by the one before).
      const back = linear(z, weight);
      y = addNorm(back, h, { rms: true });
    }
    return y;
  });
}

interface Inputs {
  x: Tensor;
  h: Tensor;
  table: Tensor;
  weight: Tensor;
}

const shapes: Record<keyof Inputs, [number, number]> = {
  x: [2, dim],
  h: [2, dim],
  table: [rows, dim],
  weight: [dim, rows],
};

/** New values for every input (bf16-exact), so a read of what the previous run left would be caught. */
function values(gen: Generator): Record<keyof Inputs, Float32Array> {
  const out = {} as Record<keyof Inputs, Float32Array>;
  for (const [name, [r, c]] of Object.entries(shapes) as [keyof Inputs, [number, number]][]) {
    const scale = name === 'weight' ? 0.05 : 1;
    const raw = Tensor.fromArray(
      Float64Array.from({ length: r * c }, () => scale * gen.normal()),
      [r, c],
      'float32',
      'cpu',
    );
    const rounded = raw.to('bfloat16').to('float32');
    out[name] = Float32Array.from(rounded.toArray());
    raw.dispose();
    rounded.dispose();
  }
  return out;
}

function tensors(v: Record<keyof Inputs, Float32Array>, device: string): Inputs {
  const t = (name: keyof Inputs) => {
    const f = Tensor.fromArray(v[name], shapes[name], 'float32', device);
    const b = f.to('bfloat16');
    f.dispose();
    return b.keep();
  };
  return { x: t('x'), h: t('h'), table: t('table'), weight: t('weight') };
}

/** Writes new values into the GPU inputs in place (the graph reads these buffers). */
function upload(into: Inputs, v: Record<keyof Inputs, Float32Array>): void {
  const fresh = tensors(v, 'cuda');
  for (const name of Object.keys(shapes) as (keyof Inputs)[]) {
    const src = fresh[name];
    src.engine.copy(src.strided(), into[name].strided(), src.shape);
    src.dispose();
  }
}

function expected(v: Record<keyof Inputs, Float32Array>): number[] {
  const cpuIn = tensors(v, 'cpu');
  const y = chain(cpuIn.x, cpuIn.h, cpuIn.table, cpuIn.weight);
  const out = y.to('float32');
  const result = Array.from(out.toArray());
  for (const t of [y, out, ...Object.values(cpuIn)]) t.dispose();
  return result;
}

function check(got: Tensor, want: number[], what: string): void {
  const f = got.to('float32');
  const v = Array.from(f.toArray());
  f.dispose();
  let worst = 0;
  v.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - want[i]!) / (1 + Math.abs(want[i]!)))));
  assert.ok(worst < 0.1, `${what}: largest difference ${worst} (relative to 1 + |expected|)`);
}

gpuTest('dependent launches: products that read the kernel before them, eagerly and in a graph, = the CPU', () => {
  const e = gpu() as CudaEngine;
  const gen = new Generator(5);
  const gpuIn = tensors(values(gen), 'cuda');
  const out = { y: null as Tensor | null };
  let graph: ReturnType<CudaEngine['captureGraph']> | null = null;
  try {
    for (let run = 0; run < 4; run++) {
      const v = values(gen);
      upload(gpuIn, v);
      const y = chain(gpuIn.x, gpuIn.h, gpuIn.table, gpuIn.weight);
      check(y, expected(v), `eager run ${run}`);
      y.dispose();
    }
    graph = e.captureGraph(() => {
      out.y = chain(gpuIn.x, gpuIn.h, gpuIn.table, gpuIn.weight).keep();
    });
    for (let replay = 0; replay < 4; replay++) {
      const v = values(gen);
      upload(gpuIn, v);
      e.fill(out.y!.dense(), out.y!.size, Number.NaN);
      graph.replay();
      check(out.y!, expected(v), `replay ${replay}`);
    }
  } finally {
    graph?.dispose();
    out.y?.dispose();
    for (const t of Object.values(gpuIn)) t.dispose();
  }
});
