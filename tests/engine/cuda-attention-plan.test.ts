// The rule the GPU tests hold the CUDA attention's transform path to (tests/gpu/attention-plan.ts, mirroring
// plan_transform / split_ready in native/cuda/attention/attention.cu and the kernel choice of heuristics.h), checked
// here without a GPU: a key scale with
// fewer KV heads than heads never takes a k' per query head — it splits where the Hopper kernels run and stays in
// the kernels elsewhere — and the other cases keep their paths.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { nativeAttentionConfig } from '../../src/engine/attention-config.js';
import type { CudaAttentionAddon } from '../../src/engine/cuda-attention.js';
import type { AttentionArgs, Dense } from '../../src/engine/engine.js';
import { requireAddon } from '../../src/engine/native-engine.js';
import type { DType } from '../../src/tensor/dtype.js';
import { expectedPlan, type PlanEnvironment } from '../gpu/attention-plan.js';
import { attentionArgsOf, makeInputs, type AttentionCase } from '../gpu/attention-cases.js';

const hopper: PlanEnvironment = { hopper: true };
const ampere: PlanEnvironment = { hopper: false };
const andromeda3b = (n: number): AttentionCase => ({
  name: `andromeda-3b n${n}`,
  B: 1,
  H: 24,
  KVH: 1,
  NQ: n,
  NK: n,
  D: 128,
  causal: true,
  rotary: 64,
  xpos: 512,
  alibi: true,
  keyScale: true,
});

test('andromeda-3b (key scale, one KV head) splits on Hopper and keeps the transform in the kernels elsewhere', () => {
  assert.equal(expectedPlan(andromeda3b(2048), 'prepass', hopper, null), 'split');
  assert.equal(expectedPlan(andromeda3b(32768), 'prepass', hopper, null), 'split');
  assert.equal(expectedPlan(andromeda3b(2048), 'prepass', ampere, null), 'kernel');
  assert.equal(expectedPlan(andromeda3b(2048), 'kernel', hopper, null), 'kernel');
  // Past one xPos anchor (≈ 34,000 positions at B = 512): the forward in chunks on the split, the backward in the
  // kernels.
  assert.equal(expectedPlan(andromeda3b(65536), 'prepass', hopper, null), 'chunked-split');
  assert.equal(expectedPlan(andromeda3b(65536), 'prepass', ampere, null), 'kernel');
});

test("the split follows the Hopper kernels that can build K'_h: the kernels a call names, their sizes", () => {
  const c = andromeda3b(300);
  assert.equal(expectedPlan(c, 'prepass', { hopper: true, forwardKernel: 'mma' }, null), 'split-backward');
  assert.equal(expectedPlan(c, 'prepass', { hopper: true, forwardKernel: 'hopper' }, null), 'split');
  assert.equal(expectedPlan(c, 'prepass', { hopper: true, backwardKernel: 'hopper' }, null), 'split');
  assert.equal(expectedPlan(c, 'prepass', { hopper: true, backwardKernel: 'mma' }, null), 'split-forward');
  assert.equal(expectedPlan(c, 'prepass', { hopper: false, forwardKernel: 'hopper' }, null), 'kernel');
  assert.equal(expectedPlan({ ...c, NQ: 40 }, 'prepass', hopper, null), 'split-forward'); // under 64 queries
  assert.equal(expectedPlan({ ...c, D: 32, rotary: 32 }, 'prepass', hopper, null), 'kernel');
  assert.equal(expectedPlan({ ...c, segments: true }, 'prepass', hopper, null), 'split'); // packed rows stay on Hopper
  assert.equal(expectedPlan({ ...c, segments: true, positions: 'reset' }, 'prepass', hopper, null), 'kernel');
  assert.equal(
    expectedPlan({ ...c, documents: [[7, 64]], indexPositions: true }, 'prepass', hopper, null),
    'split', // packed documents whose positions the engine gets as index positions
  );
});

test(
  "a key scale without rotary splits the forward anywhere (the scale moves onto q'), the backward only on " + 'Hopper',
  () => {
    const c: AttentionCase = { name: 'ks', B: 1, H: 4, KVH: 1, NQ: 200, NK: 200, D: 64, causal: true, keyScale: true };
    assert.equal(expectedPlan(c, 'prepass', hopper, null), 'split');
    assert.equal(expectedPlan(c, 'prepass', ampere, null), 'split-forward');
  },
);

test('one KV head per query head, or no key scale: the pre-pass as before', () => {
  const mha: AttentionCase = {
    name: 'mha',
    B: 1,
    H: 4,
    KVH: 4,
    NQ: 200,
    NK: 200,
    D: 64,
    causal: true,
    rotary: 32,
    xpos: 512,
    keyScale: true,
  };
  assert.equal(expectedPlan(mha, 'prepass', ampere, null), 'prepass');
  assert.equal(expectedPlan({ ...mha, KVH: 1, keyScale: false }, 'prepass', ampere, null), 'prepass');
  assert.equal(expectedPlan({ ...mha, rotary: 0, xpos: undefined, keyScale: false }, 'prepass', ampere, null), 'none');
});

// The built CUDA addon's own plan (attention_transform_plan, a pure function of the problem and the options) agrees
// with the rule above. Cases whose key scale is shared by several query heads ask the device whether the Hopper
// kernels run, so only the others are checked here; the GPU tests check every case on the device.
const cudaAddon = requireAddon<CudaAttentionAddon>('andromeda_cuda.node');
const noAddon = existsSync(cudaAddon.path) ? null : `the CUDA addon is not built (${cudaAddon.path})`;

test(
  'the CUDA addon plans the transform as the rule says, for each transform option (no device needed)',
  { skip: noAddon ?? false },
  () => {
    const addon = cudaAddon.load();
    const fake = (values: ArrayLike<number>, dtype: DType): Dense => ({ handle: 1 + values.length, offset: 0, dtype });
    const cases: AttentionCase[] = [
      { name: 'plain', B: 1, H: 4, KVH: 1, NQ: 100, NK: 100, D: 64, causal: true },
      { name: 'rotary MQA', B: 1, H: 4, KVH: 1, NQ: 200, NK: 200, D: 64, rotary: 32, causal: true },
      {
        name: 'MHA keyScale xPos',
        B: 1,
        H: 3,
        KVH: 3,
        NQ: 100,
        NK: 100,
        D: 64,
        rotary: 64,
        xpos: 512,
        keyScale: true,
        causal: true,
      },
      {
        name: 'xPos base 8 past one anchor (chunked)',
        B: 1,
        H: 2,
        KVH: 1,
        NQ: 600,
        NK: 600,
        D: 64,
        causal: true,
        rotary: 32,
        xpos: 8,
      },
      {
        name: 'xPos base 8, non-causal keys beyond a chunk',
        B: 1,
        H: 2,
        KVH: 2,
        NQ: 300,
        NK: 1200,
        D: 64,
        offset: 0,
        rotary: 32,
        xpos: 8,
      },
      {
        name: 'custom positions with xPos',
        B: 2,
        H: 4,
        KVH: 4,
        NQ: 20,
        NK: 90,
        D: 64,
        causal: true,
        positions: 'custom',
        rotary: 16,
        xpos: 256,
        keyScale: true,
      },
      {
        name: 'reset positions, segments, rotary',
        B: 2,
        H: 4,
        KVH: 2,
        NQ: 90,
        NK: 90,
        D: 64,
        causal: true,
        positions: 'reset',
        segments: true,
        rotary: 32,
      },
    ];
    for (const c of cases) {
      const inp = makeInputs(c);
      const range =
        inp.qpos || inp.kpos
          ? {
              min: Math.min(...(inp.qpos ?? []), ...(inp.kpos ?? [])),
              max: Math.max(...(inp.qpos ?? []), ...(inp.kpos ?? [])),
            }
          : null;
      const args: AttentionArgs = { ...attentionArgsOf(c, inp, fake), positionRange: range };
      const config = nativeAttentionConfig('attention (cuda)', fake([], 'bfloat16'), [], fake([], 'float32'), args);
      for (const transform of ['kernel', 'prepass'] as const) {
        assert.equal(
          addon.attentionTransformPlan(config, { transform }),
          expectedPlan(c, transform, ampere, range),
          `${c.name}, ${transform}`,
        );
      }
    }
    assert.throws(
      () =>
        addon.attentionTransformPlan(
          nativeAttentionConfig(
            'attention (cuda)',
            fake([], 'bfloat16'),
            [],
            fake([], 'float32'),
            attentionArgsOf(cases[1]!, makeInputs(cases[1]!), fake),
          ),
          { transform: 'sometimes' as never },
        ),
      /transform must be one of 'auto', 'kernel', 'prepass'/,
    );
  },
);
