// Chained launches (programmatic dependent launch, native/cuda/chained_launch.cuh) change when a decode step's
// kernels are placed on the GPU, never what they compute: the same requests through the inference engine give the
// same tokens with chaining on and off, replayed as graphs (whose captured edges carry the chaining) and eagerly.
// (That the chained kernels agree with the CPU engine is what the other GPU tests check: chaining is on by
// default.) The model has the 3B shape's features in small: MQA with
// head dim 128 (the paged kernel's tensor-core tile), qk-norm with a dim scale, DeepNorm, token shift 1.
import assert from 'node:assert/strict';
import { andromedaFamily } from '../../src/train/andromeda-adapter.js';
import { InferenceEngine } from '../../src/inference/engine.js';
import type { LanguageModel } from '../../src/train/model.js';
import type { CudaEngine } from '../../src/engine/cuda.js';
import { greedy, tokenizer } from '../helpers/inference-engine.js';
import { gpu, gpuTest } from './harness.js';

const SHAPE = {
  dim: 256,
  depth: 3,
  heads: 4,
  headDim: 128,
  kvHeads: 1,
  alibiHeads: 2,
  shiftTokens: 1,
  qkNorm: true,
  qkNormDimScale: true,
  deepnorm: true,
  rotary: { xpos: true },
};
const PROMPTS = ['chained launches', 'a', 'the same tokens either way, replayed or not, in any order of arrival'];
const NEW_TOKENS = 40;

function model(device: string, dtype: 'float32' | 'bfloat16'): LanguageModel {
  const config = andromedaFamily.presetConfig('tiny', tokenizer.vocabSize, SHAPE);
  const m = andromedaFamily.create(config, { seed: 3, device });
  if (dtype === 'bfloat16') m.to!(dtype);
  return m;
}

async function tokens(m: LanguageModel, o: { chained: boolean; graphs: boolean }): Promise<number[][]> {
  const engine = gpu() as CudaEngine;
  engine.setChainedLaunch(o.chained);
  const inference = new InferenceEngine(m, tokenizer, {
    blockSize: 16,
    numBlocks: 64,
    maxBatch: 4,
    cudaGraphs: o.graphs,
  });
  try {
    const results = await Promise.all(PROMPTS.map((p) => inference.submit(p, greedy(NEW_TOKENS)).result));
    if (o.graphs) assert.ok(inference.stats().graphs > 0, 'decode steps replayed graphs');
    return results.map((r) => r.tokenIds);
  } finally {
    await inference.close();
    engine.setChainedLaunch(true);
  }
}

for (const dtype of ['bfloat16', 'float32'] as const) {
  gpuTest(`cuda ${dtype}: chained launches give the unchained tokens, with and without graphs`, async () => {
    const m = model('cuda', dtype);
    try {
      const reference = await tokens(m, { chained: false, graphs: false });
      assert.equal(reference.length, PROMPTS.length);
      reference.forEach((ids) => assert.equal(ids.length, NEW_TOKENS));
      for (const graphs of [false, true]) {
        assert.deepEqual(await tokens(m, { chained: true, graphs }), reference, `chained, graphs ${graphs}`);
        assert.deepEqual(await tokens(m, { chained: false, graphs }), reference, `unchained, graphs ${graphs}`);
      }
    } finally {
      m.dispose();
    }
  });
}
