// The CUDA attention's options (src/engine/cuda-attention.ts) are checked before anything reaches the addon: every
// value the kernels accept passes, and an unknown value or option name fails with what is accepted. Runs without a
// GPU: the addon below records what it receives.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkAttentionOptions,
  cudaAttentionForward,
  type CudaAttentionAddon,
  type CudaAttentionOptions,
} from '../../src/engine/cuda-attention.js';
import type { AttentionArgs, Dense } from '../../src/engine/engine.js';

test('every accepted attention option value passes unchanged', () => {
  const all: CudaAttentionOptions[] = [
    {},
    { path: 'auto' },
    { path: 'tiled' },
    { path: 'decode' },
    { forwardKernel: 'mma' },
    { forwardKernel: 'hopper' },
    { backwardKernel: 'auto' },
    { backwardKernel: 'hopper' },
    { transform: 'kernel' },
    { transform: 'prepass' },
    { path: 'tiled', forwardKernel: 'hopper', backwardKernel: 'mma', transform: 'auto' },
  ];
  for (const o of all) assert.deepEqual(checkAttentionOptions(o), o);
});

test('an unknown option value or name is refused, naming what is accepted', () => {
  assert.throws(
    () => checkAttentionOptions({ transform: 'sometimes' as never }),
    /transform 'sometimes' \(expected 'auto', 'kernel', 'prepass'\)/,
  );
  assert.throws(
    () => checkAttentionOptions({ forwardKernel: 'hopper-tma' as never }),
    /forwardKernel 'hopper-tma' \(expected 'auto', 'mma', 'hopper'\)/,
  );
  assert.throws(() => checkAttentionOptions({ path: 'fast' as never }), /path 'fast'/);
  assert.throws(
    () => checkAttentionOptions({ layout: '8x16' } as never),
    /unknown option 'layout' \(options: path, forwardKernel, backwardKernel, transform\)/,
  );
});

test('the forward hands the checked options to the addon, and refuses bad ones before calling it', () => {
  const calls: (CudaAttentionOptions | undefined)[] = [];
  const addon = {
    // (config, q, qOffset, k, kOffset, v, vOffset, out, outOffset, lse, lseOffset, options): native/abi/kernels.mjs
    attentionForward: (...a: unknown[]) => {
      calls.push(a[11] as CudaAttentionOptions | undefined);
    },
  } as unknown as CudaAttentionAddon;
  const dense = (dtype: Dense['dtype']): Dense => ({ handle: 1, offset: 0, dtype });
  const args: AttentionArgs = {
    batch: 1,
    heads: 2,
    kvHeads: 1,
    queryLen: 4,
    keyLen: 4,
    headDim: 64,
    scale: 0.125,
    causal: true,
    queryOffset: 0,
    alibiSlopes: null,
    rotaryDim: 0,
    rotaryInvFreq: null,
    xposScaleBase: 0,
    keyScale: null,
    queryPositions: null,
    keyPositions: null,
    querySegments: null,
    keySegments: null,
  };
  const q = dense('bfloat16'),
    lse = dense('float32');
  cudaAttentionForward(addon, q, q, q, q, lse, args, { path: 'decode' });
  cudaAttentionForward(addon, q, q, q, q, lse, args);
  assert.deepEqual(calls, [{ path: 'decode' }, {}]);
  assert.throws(() => cudaAttentionForward(addon, q, q, q, q, lse, args, { path: 'x' as never }), /path 'x'/);
  assert.equal(calls.length, 2);
});
