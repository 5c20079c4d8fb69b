// The block runner's memory regimes: without autograd each block's intermediates are freed as soon as
// it returns, so the peak memory of a forward pass does not grow with depth; with autograd they are
// kept for the backward pass (which is what makes the first check able to fail).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { getEngine } from '../../src/engine/index.js';
import { Andromeda } from '../../src/model/andromeda.js';
import { presetInput } from '../../src/model/presets.js';
import { randomTokens } from './helpers.js';

const cpu = getEngine('cpu');

/** Bytes above the model's parameters at the peak of one forward pass over [1, 64] tokens. */
function forwardPeak(depth: number, autograd: boolean): number {
  const model = new Andromeda(
    presetInput('tiny', { depth, dim: 64, headDim: 16, vocabSize: 64, rotary: { xpos: true, dim: 16 } }),
    { seed: 1 },
  );
  const tokens = Tensor.fromArray(randomTokens(64, 64, 2), [1, 64], 'int32');
  const before = cpu.memoryStats().allocated;
  cpu.resetPeakMemory();
  tidy(() => (autograd ? model.forward(tokens) : noGrad(() => model.forward(tokens))));
  const peak = cpu.memoryStats().peakAllocated - before;
  tokens.dispose();
  model.dispose();
  return peak;
}

test(
  'without autograd a forward pass holds one block of activations at a time: its peak memory does not grow with ' +
    'depth',
  () => {
    const shallow = forwardPeak(1, false),
      deep = forwardPeak(4, false);
    assert.ok(deep <= shallow * 1.1, `peak above the parameters: depth 4 ${deep} bytes, depth 1 ${shallow}`);
    const shallowTraining = forwardPeak(1, true),
      deepTraining = forwardPeak(4, true);
    assert.ok(
      deepTraining > 2 * shallowTraining,
      `with autograd: depth 4 ${deepTraining} bytes, depth 1 ${shallowTraining}`,
    );
  },
);
