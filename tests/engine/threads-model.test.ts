// The CPU engine gives the same bits with any number of threads: a forward and backward pass of small
// Andromeda models that between them use every architecture feature (GQA, ALiBi, rotary + xPos,
// DeepNorm post-norm, pre-norm RMSNorm, SwiGLU, parallel blocks, tied embeddings, token shift, QK
// norm), run with 1, 2 and 3 threads, twice each, must give identical loss and gradient bytes.
// Sizes are picked so that the reductions split into several blocks and the attention backward into
// several key-tile slots. Also: the thread count is validated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEngine } from '../../src/engine/index.js';
import type { CpuEngine } from '../../src/engine/cpu.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { narrow } from '../../src/ops/layout.js';
import { Andromeda } from '../../src/model/andromeda.js';
import type { AndromedaConfigInput } from '../../src/model/config.js';

const cpu = getEngine('cpu') as CpuEngine;

const MODELS: Record<string, AndromedaConfigInput> = {
  'deepnorm, MQA, ALiBi, xPos, QK norm with key scale, token shift': {
    vocabSize: 257,
    dim: 128,
    depth: 2,
    heads: 4,
    headDim: 32,
    kvHeads: 1,
    alibiHeads: 2,
    rotary: { xpos: true },
    deepnorm: true,
    shiftTokens: 1,
    qkNorm: true,
    qkNormDimScale: true,
  },
  'pre-norm RMSNorm, SwiGLU, parallel blocks, tied embeddings, GQA': {
    vocabSize: 257,
    dim: 128,
    depth: 2,
    heads: 4,
    headDim: 32,
    kvHeads: 2,
    alibiHeads: 1,
    rotary: true,
    norm: 'rmsnorm',
    ffActivation: 'swiglu',
    parallelBlocks: true,
    tiedEmbeddings: true,
  },
};

/** Loss and every parameter gradient of one forward + backward pass, as raw bytes. */
function lossAndGradients(config: AndromedaConfigInput, threads: number): Buffer[] {
  cpu.threads(threads);
  const batch = 4,
    seqLen = 160;
  const model = new Andromeda(config, { seed: 3 });
  let seed = 99;
  const ids = Int32Array.from(
    { length: batch * (seqLen + 1) },
    () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % 257,
  );
  const rows = Tensor.fromArray(ids, [batch, seqLen + 1], 'int32');
  try {
    return tidy(() => {
      const inputs = narrow(rows, 1, 0, seqLen).contiguous();
      const targets = narrow(rows, 1, 1, seqLen).contiguous();
      const loss = model.loss(inputs, { targets });
      loss.backward();
      const bytes = (a: ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }) =>
        Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      return [bytes(Float64Array.of(loss.item())), ...model.parameters().map((p) => bytes(p.grad!.toArray()))];
    });
  } finally {
    rows.dispose();
    model.dispose();
  }
}

test('forward + backward give bit-identical loss and gradients with 1, 2 and 3 threads', { timeout: 120_000 }, () => {
  const saved = cpu.threads();
  try {
    for (const [name, config] of Object.entries(MODELS)) {
      const base = lossAndGradients(config, 1);
      for (const threads of [2, 3, 2, 3]) {
        const got = lossAndGradients(config, threads);
        assert.equal(got.length, base.length);
        got.forEach((g, i) =>
          assert.ok(
            g.equals(base[i]!),
            `${name}: ${i === 0 ? 'loss' : `gradient of parameter ${i - 1}`} differs with ${threads} threads`,
          ),
        );
      }
    }
  } finally {
    cpu.threads(saved);
  }
});

test('threads(n) accepts integers from 1 to 1024 and rejects anything else by name', () => {
  const saved = cpu.threads();
  try {
    assert.equal(cpu.threads(3), 3);
    assert.equal(cpu.threads(), 3);
    assert.equal(cpu.cpuInfo().threads, 3);
    for (const bad of [0, -5, 1.5, 1025, 100000, Number.NaN]) {
      assert.throws(() => cpu.threads(bad), /threads\(\) must be an integer from 1 to 1024/, String(bad));
    }
    assert.equal(cpu.threads(), 3, 'a rejected value leaves the count unchanged');
  } finally {
    cpu.threads(saved);
  }
});
