// CUDA graphs (Engine.captureGraph on the CUDA engine): a chain of real ops — embedding gather, RMS norm, a
// cuBLASLt matrix product, GELU, device sampling — captured once, replayed after new inputs are uploaded, equal to
// running it eagerly; the graph's private pool is never handed to other tensors while it lives, and the memory
// comes back after disposal; a download inside the function throws and the engine keeps working, and so does a
// many-tensor optimizer step (its work list is a host copy).
import assert from 'node:assert/strict';
import { AdamW, AdamW8bit, Tensor, keep, tidy } from '../../src/index.js';
import { Generator } from '../../src/tensor/random.js';
import { embedding, rmsNorm } from '../../src/ops/nn.js';
import { gelu } from '../../src/ops/elementwise.js';
import { matmul } from '../../src/ops/matmul.js';
import { sampleTokens, samplingParams, samplingSeeds } from '../../src/ops/sampling.js';
import type { CudaEngine } from '../../src/engine/cuda.js';
import { gpu, gpuTest } from './harness.js';

const engine = (): CudaEngine => gpu() as CudaEngine;
const vocab = 512,
  dim = 256,
  hidden = 1024,
  tokens = 8;

function weights(gen: Generator) {
  const normal = (n: number, scale: number) => Float64Array.from({ length: n }, () => scale * gen.normal());
  return {
    table: Tensor.fromArray(normal(vocab * dim, 1), [vocab, dim], 'float32', 'cuda'),
    norm: Tensor.fromArray(
      normal(dim, 0.1).map((v) => 1 + v),
      [dim],
      'float32',
      'cuda',
    ),
    up: Tensor.fromArray(normal(dim * hidden, 1 / Math.sqrt(dim)), [dim, hidden], 'float32', 'cuda'),
  };
}

/** The chain: gather, norm, product, activation; intermediates (norm statistics included) freed inside. */
function chain(w: ReturnType<typeof weights>, ids: Tensor): Tensor {
  return tidy(() => gelu(matmul(rmsNorm(embedding(w.table, ids), w.norm), w.up)));
}

/** Equal up to float32 rounding (the product may pick another cuBLASLt algorithm for other addresses). */
function assertNear(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) {
    const tolerance = 1e-5 * Math.max(1, Math.abs(want[i]!));
    assert.ok(Math.abs(got[i]! - want[i]!) <= tolerance, `${what}: element ${i} is ${got[i]}, eagerly ${want[i]}`);
  }
}

function ids(gen: Generator): Int32Array {
  return Int32Array.from({ length: tokens }, () => gen.int(vocab));
}

gpuTest('captureGraph: a replayed chain of ops equals eager runs, for new inputs uploaded between replays', () => {
  const e = engine();
  const gen = new Generator(1);
  const w = weights(gen);
  const input = Tensor.fromArray(ids(gen), [tokens], 'int32', 'cuda');
  const eager = (values: Int32Array) => {
    const t = Tensor.fromArray(values, [tokens], 'int32', 'cuda');
    const z = chain(w, t);
    const out = Float32Array.from(z.toArray());
    z.dispose();
    t.dispose();
    return out;
  };
  eager(ids(gen)); // loads cuBLASLt and warms the caches before the baseline
  e.synchronize();
  const baseline = e.memoryStats().allocated;

  const result: { z: Tensor | null } = { z: null };
  const graph = e.captureGraph(() => {
    result.z = chain(w, input);
  });
  assert.ok(e.memoryStats().allocated > baseline, 'the capture allocated from its pool');
  // A tensor allocated while the graph lives never gets its blocks: replays must leave it alone.
  const bystander = Tensor.fromArray(new Float32Array(tokens * hidden).fill(7), [tokens, hidden], 'float32', 'cuda');
  for (let round = 0; round < 3; round++) {
    const values = ids(gen);
    e.upload(input.storage.handle, 0, values);
    graph.replay();
    assertNear(result.z!.toArray(), eager(values), `round ${round}`);
  }
  assert.ok(
    (bystander.toArray() as Float32Array).every((v) => v === 7),
    'the replays wrote only the graph’s own memory',
  );
  bystander.dispose();
  result.z!.dispose();
  assert.ok(e.memoryStats().graphPoolIdle > 0, 'freed graph blocks stay in its pool while it lives');
  graph.dispose();
  assert.throws(() => graph.replay(), /replay\(\) after dispose\(\)/);
  assert.equal(e.memoryStats().graphPoolIdle, 0);
  assert.equal(e.memoryStats().allocated, baseline, 'every block of the pool came back at disposal');
  for (const t of [input, w.table, w.norm, w.up]) t.dispose();
});

gpuTest('captureGraph: a tensor from before the capture, written and freed inside it, stays the graph’s', () => {
  const e = engine();
  const gen = new Generator(4);
  const w = weights(gen);
  const input = Tensor.fromArray(ids(gen), [tokens], 'int32', 'cuda');
  const older = Tensor.fromArray(new Float32Array(tokens * hidden), [tokens, hidden], 'float32', 'cuda');
  const result: { z: Tensor | null } = { z: null };
  const graph = e.captureGraph(() => {
    result.z = chain(w, input);
    e.copy(result.z.strided('graph test'), older.strided('graph test'), [tokens, hidden]);
    older.dispose();
  });
  // Same size as the freed block: the cache would hand that block out first if the capture had returned it.
  const bystander = Tensor.fromArray(new Float32Array(tokens * hidden).fill(7), [tokens, hidden], 'float32', 'cuda');
  graph.replay();
  assert.ok(
    (bystander.toArray() as Float32Array).every((v) => v === 7),
    'a replay wrote into a block freed during the capture and handed to another tensor',
  );
  bystander.dispose();
  result.z!.dispose();
  graph.dispose();
  for (const t of [input, w.table, w.norm, w.up]) t.dispose();
});

gpuTest('captureGraph: a download inside the function throws, the capture is abandoned, the engine works', () => {
  const e = engine();
  const gen = new Generator(2);
  const w = weights(gen);
  const values = ids(gen);
  const input = Tensor.fromArray(values, [tokens], 'int32', 'cuda');
  const before = chain(w, input);
  const expected = Array.from(before.toArray());
  before.dispose();
  e.synchronize();
  const baseline = e.memoryStats().allocated;
  assert.throws(
    () =>
      e.captureGraph(() => {
        const z = chain(w, input);
        try {
          z.toArray();
        } finally {
          z.dispose();
        }
      }),
    /download \(a device→host read\) inside captureGraph/,
  );
  assert.equal(e.memoryStats().allocated, baseline, 'the abandoned capture returned its pool');
  const after = chain(w, input);
  assertNear(after.toArray(), expected, 'eager work after the failed capture');
  after.dispose();
  // And a new capture still works.
  const result: { z: Tensor | null } = { z: null };
  const graph = e.captureGraph(() => {
    result.z = chain(w, input);
  });
  graph.replay();
  assertNear(result.z!.toArray(), expected, 'a capture after the failed one');
  result.z!.dispose();
  graph.dispose();
  for (const t of [input, w.table, w.norm, w.up]) t.dispose();
});

gpuTest('captureGraph: a replayed sampling step advances its counters and draws what eager calls draw', () => {
  const e = engine();
  const gen = new Generator(3);
  const rows = 4,
    width = 50432;
  const logits = Tensor.fromArray(
    Float64Array.from({ length: rows * width }, () => gen.normal()),
    [rows, width],
    'bfloat16',
    'cuda',
  );
  const options = [
    { temperature: 1 },
    { temperature: 0.8, topK: 40 },
    { temperature: 1, topP: 0.9 },
    { temperature: 0 },
  ];
  const params = samplingParams(options, 'cuda');
  const seeds = samplingSeeds([1, 2, 3, 4], 'cuda');
  const replayed: number[][] = [];
  {
    const steps = Tensor.fromArray(new Int32Array(rows), [rows], 'int32', 'cuda');
    const result: { ids: Tensor | null } = { ids: null };
    const graph = e.captureGraph(() => {
      result.ids = sampleTokens(logits, { params, seeds, steps }).ids;
    });
    for (let i = 0; i < 5; i++) {
      graph.replay();
      replayed.push(Array.from(result.ids!.toArray()));
    }
    assert.deepEqual(Array.from(steps.toArray()), [5, 5, 5, 5]);
    result.ids!.dispose();
    graph.dispose();
    steps.dispose();
  }
  const steps = Tensor.fromArray(new Int32Array(rows), [rows], 'int32', 'cuda');
  for (let i = 0; i < 5; i++) {
    const r = sampleTokens(logits, { params, seeds, steps });
    assert.deepEqual(Array.from(r.ids.toArray()), replayed[i], `step ${i}`);
    r.ids.dispose();
  }
  assert.ok(new Set(replayed.map((r) => r[0])).size > 1, 'replays drew fresh numbers');
  for (const t of [logits, params, seeds, steps]) t.dispose();
});

gpuTest(
  'captureGraph: many-tensor optimizer steps are refused, naming their host work list; eager steps still work',
  () => {
    const e = engine();
    const gen = new Generator(11);
    const params = [4099, 70001].map((n) => {
      const p = keep(
        Tensor.fromArray(
          Float64Array.from({ length: n }, () => gen.normal()),
          [n],
          'float32',
          'cuda',
        ),
      );
      p.requireGrad();
      p.grad = keep(
        Tensor.fromArray(
          Float64Array.from({ length: n }, () => 0.01 * gen.normal()),
          [n],
          'float32',
          'cuda',
        ),
      );
      return p;
    });
    for (const [name, optimizer] of [
      ['adamwMany', new AdamW(params)],
      ['adamw8bitMany', new AdamW8bit(params)],
    ] as const) {
      optimizer.step(); // the moments exist before the capture, so none comes from the graph's pool
      const before = params.map((p) => p.toArray());
      const baseline = e.memoryStats().allocated;
      assert.throws(
        () => e.captureGraph(() => optimizer.step()),
        new RegExp(`${name} \\(chunk table\\) inside captureGraph: its work list is a host→device copy`),
      );
      assert.equal(e.memoryStats().allocated, baseline, `${name}: the abandoned capture returned its pool`);
      assert.deepEqual(
        params.map((p) => p.toArray()),
        before,
        `${name}: the refused step changed no weight`,
      );
      optimizer.step();
      params.forEach((p, i) => {
        const after = p.toArray();
        assert.ok(after.every(Number.isFinite), `${name}: an eager step after the refusal is finite`);
        assert.notDeepEqual(after, before[i], `${name}: an eager step after the refusal updates the weights`);
      });
    }
    for (const p of params) {
      p.grad!.dispose();
      p.dispose();
    }
  },
);
