/**
 * How a block runs, as far as memory goes; the values are the same either way.
 *   training:                 block.forward, every intermediate kept for the backward pass
 *   activation checkpointing: only the block's input kept; the block is recomputed in the backward pass
 *   no autograd (inference):  nothing needs a block's intermediates after it, so they (and its input)
 *                             are freed as soon as it returns: memory is one block's activations, not
 *                             the whole stack's
 */
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { isGradEnabled } from '../autograd/grad-mode.js';
import { checkpoint } from '../ops/activation-checkpoint.js';
import type { Block } from './block.js';
import type { LayerState } from './context.js';

export type BlockRunner = (block: Block, x: Tensor, state: LayerState) => Tensor;

export function blockRunner(activationCheckpointing: boolean): BlockRunner {
  if (!isGradEnabled()) return runFreeingIntermediates;
  return activationCheckpointing ? runCheckpointed : runKeepingIntermediates;
}

function runKeepingIntermediates(block: Block, x: Tensor, state: LayerState): Tensor {
  return block.forward(x, state);
}

function runCheckpointed(block: Block, x: Tensor, state: LayerState): Tensor {
  return checkpoint((input) => block.forward(input, state), x, block.parameters());
}

function runFreeingIntermediates(block: Block, x: Tensor, state: LayerState): Tensor {
  const y = tidy(() => block.forward(x, state));
  if (y !== x) x.dispose();
  return y;
}
