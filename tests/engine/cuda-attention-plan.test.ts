// The rule the GPU tests hold the CUDA attention's transform path to (tests/gpu/attention-plan.ts, mirroring
// plan_transform / split_ready in native/cuda/attention/attention.cu and the kernel choice of heuristics.h), checked
// here without a GPU: a key scale with
// fewer KV heads than heads never takes a k' per query head — it splits where the Hopper kernels run and stays in
// the kernels elsewhere — and the other cases keep their paths.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectedPlan, type PlanEnvironment } from '../gpu/attention-plan.js';
import type { AttentionCase } from '../gpu/attention-cases.js';

const hopper: PlanEnvironment = { hopper: true };
const ampere: PlanEnvironment = { hopper: false };
const andromeda3b = (n: number): AttentionCase => ({
  name: `andromeda-3b n${n}`, B: 1, H: 24, KVH: 1, NQ: n, NK: n, D: 128, causal: true, rotary: 64, xpos: 512, alibi: true, keyScale: true,
});

test('andromeda-3b (key scale, one KV head) splits on Hopper and keeps the transform in the kernels elsewhere', () => {
  assert.equal(expectedPlan(andromeda3b(2048), 'prepass', hopper, null), 'split');
  assert.equal(expectedPlan(andromeda3b(32768), 'prepass', hopper, null), 'split');
  assert.equal(expectedPlan(andromeda3b(2048), 'prepass', ampere, null), 'kernel');
  assert.equal(expectedPlan(andromeda3b(2048), 'kernel', hopper, null), 'kernel');
  // Past one xPos anchor (≈ 34,000 positions at B = 512): the forward in chunks on the split, the backward in the kernels.
  assert.equal(expectedPlan(andromeda3b(65536), 'prepass', hopper, null), 'chunked-split');
  assert.equal(expectedPlan(andromeda3b(65536), 'prepass', ampere, null), 'kernel');
});

test('the split follows the Hopper kernels that can build K\'_h: the kernels a call names, their sizes', () => {
  const c = andromeda3b(300);
  assert.equal(expectedPlan(c, 'prepass', { hopper: true, forwardKernel: 'mma' }, null), 'split-backward');
  assert.equal(expectedPlan(c, 'prepass', { hopper: true, forwardKernel: 'hopper' }, null), 'split');
  assert.equal(expectedPlan(c, 'prepass', { hopper: true, backwardKernel: 'hopper' }, null), 'split');
  assert.equal(expectedPlan(c, 'prepass', { hopper: true, backwardKernel: 'mma' }, null), 'split-forward');
  assert.equal(expectedPlan(c, 'prepass', { hopper: false, forwardKernel: 'hopper' }, null), 'kernel');
  assert.equal(expectedPlan({ ...c, NQ: 40 }, 'prepass', hopper, null), 'split-forward');  // under 64 queries
  assert.equal(expectedPlan({ ...c, D: 32, rotary: 32 }, 'prepass', hopper, null), 'kernel');
  assert.equal(expectedPlan({ ...c, segments: true }, 'prepass', hopper, null), 'kernel');
});

test('a key scale without rotary splits the forward anywhere (the scale moves onto q\'), the backward only on Hopper', () => {
  const c: AttentionCase = { name: 'ks', B: 1, H: 4, KVH: 1, NQ: 200, NK: 200, D: 64, causal: true, keyScale: true };
  assert.equal(expectedPlan(c, 'prepass', hopper, null), 'split');
  assert.equal(expectedPlan(c, 'prepass', ampere, null), 'split-forward');
});

test('one KV head per query head, or no key scale: the pre-pass as before', () => {
  const mha: AttentionCase = { name: 'mha', B: 1, H: 4, KVH: 4, NQ: 200, NK: 200, D: 64, causal: true, rotary: 32, xpos: 512, keyScale: true };
  assert.equal(expectedPlan(mha, 'prepass', ampere, null), 'prepass');
  assert.equal(expectedPlan({ ...mha, KVH: 1, keyScale: false }, 'prepass', ampere, null), 'prepass');
  assert.equal(expectedPlan({ ...mha, rotary: 0, xpos: undefined, keyScale: false }, 'prepass', ampere, null), 'none');
});
